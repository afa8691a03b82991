import Foundation

/// Encodes an `Encodable` as a `JSONValue`, so the API types are written by `JSONValue`'s
/// writer inside the envelope.
///
/// Object keys keep the order they are encoded in, which for a synthesized conformance is the
/// order the properties are declared: a payload type lists its fields in the order the API
/// documents them, and that is their order on the wire (JSONEncoder keeps no order). Numbers
/// stay `.int` and `.double`, written as `JSONValue` writes them. A value that encodes a key
/// twice keeps both; the API types never do.
struct JSONValueEncoder {
    func encode(_ value: some Encodable) throws -> JSONValue {
        try Self.slot(for: value, codingPath: []).value
    }

    /// A value as a finished `JSONValue` when it is a primitive or `JSONValueRepresentable`,
    /// else as the node its containers write.
    fileprivate static func slot<T: Encodable>(for value: T, codingPath: [any CodingKey]) throws -> Slot {
        // The type is compared before anything is cast: a cast that fails costs more than
        // encoding the value (a list of 50 jobs took twice as long with casts alone).
        let type = T.self
        if type == String.self { return .value(.string(value as! String)) }
        if type == Int.self { return .value(.int(value as! Int)) }
        if type == Bool.self { return .value(.bool(value as! Bool)) }
        if type == Double.self { return .value(.double(value as! Double)) }
        if let value = value as? any JSONValueRepresentable { return .value(try value.jsonValue()) }
        let node = Node()
        try value.encode(to: NodeEncoder(node: node, codingPath: codingPath))
        return .node(node)
    }
}

/// A value whose JSON is given whole rather than encoded field by field.
protocol JSONValueRepresentable {
    func jsonValue() throws -> JSONValue
}

/// What one value encodes into, filled in by the container it asks for.
private final class Node {
    enum Shape { case unset, single(JSONValue), object, array }
    var shape = Shape.unset
    var members: [(key: String, slot: Slot)] = []
    var elements: [Slot] = []

    var value: JSONValue {
        switch shape {
        // A value that encodes nothing is an empty object, as with JSONEncoder.
        case .unset: .object([])
        case .single(let value): value
        case .object: .object(members.map { ($0.key, $0.slot.value) })
        case .array: .array(elements.map(\.value))
        }
    }
}

private enum Slot {
    case value(JSONValue)
    case node(Node)

    var value: JSONValue {
        switch self {
        case .value(let value): value
        case .node(let node): node.value
        }
    }
}

private struct NodeEncoder: Encoder {
    let node: Node
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = node.shape {} else { node.shape = .object }
        return KeyedEncodingContainer(KeyedContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.shape {} else { node.shape = .array }
        return UnkeyedContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleValueContainer(node: node, codingPath: codingPath)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: Node
    let codingPath: [any CodingKey]

    private func append(_ key: Key, _ value: JSONValue) {
        node.members.append((key.stringValue, .value(value)))
    }

    mutating func encodeNil(forKey key: Key) { append(key, .null) }
    mutating func encode(_ value: Bool, forKey key: Key) { append(key, .bool(value)) }
    mutating func encode(_ value: String, forKey key: Key) { append(key, .string(value)) }
    mutating func encode(_ value: Double, forKey key: Key) { append(key, .double(value)) }
    mutating func encode(_ value: Float, forKey key: Key) { append(key, .double(Double(value))) }
    mutating func encode(_ value: Int, forKey key: Key) { append(key, .int(value)) }
    mutating func encode(_ value: Int8, forKey key: Key) { append(key, .int(Int(value))) }
    mutating func encode(_ value: Int16, forKey key: Key) { append(key, .int(Int(value))) }
    mutating func encode(_ value: Int32, forKey key: Key) { append(key, .int(Int(value))) }
    mutating func encode(_ value: Int64, forKey key: Key) { append(key, .int(Int(value))) }
    mutating func encode(_ value: UInt, forKey key: Key) { append(key, JSONValue(value)) }
    mutating func encode(_ value: UInt8, forKey key: Key) { append(key, .int(Int(value))) }
    mutating func encode(_ value: UInt16, forKey key: Key) { append(key, .int(Int(value))) }
    mutating func encode(_ value: UInt32, forKey key: Key) { append(key, .int(Int(value))) }
    mutating func encode(_ value: UInt64, forKey key: Key) { append(key, JSONValue(value)) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        node.members.append((key.stringValue, try JSONValueEncoder.slot(for: value, codingPath: codingPath + [key])))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let child = Node()
        node.members.append((key.stringValue, .node(child)))
        return NodeEncoder(node: child, codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = Node()
        node.members.append((key.stringValue, .node(child)))
        return NodeEncoder(node: child, codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        superEncoder(named: "super", codingPath: codingPath)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        superEncoder(named: key.stringValue, codingPath: codingPath + [key])
    }

    private func superEncoder(named name: String, codingPath: [any CodingKey]) -> any Encoder {
        let child = Node()
        node.members.append((name, .node(child)))
        return NodeEncoder(node: child, codingPath: codingPath)
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]
    var count: Int { node.elements.count }

    private func append(_ value: JSONValue) {
        node.elements.append(.value(value))
    }

    mutating func encodeNil() { append(.null) }
    mutating func encode(_ value: Bool) { append(.bool(value)) }
    mutating func encode(_ value: String) { append(.string(value)) }
    mutating func encode(_ value: Double) { append(.double(value)) }
    mutating func encode(_ value: Float) { append(.double(Double(value))) }
    mutating func encode(_ value: Int) { append(.int(value)) }
    mutating func encode(_ value: Int8) { append(.int(Int(value))) }
    mutating func encode(_ value: Int16) { append(.int(Int(value))) }
    mutating func encode(_ value: Int32) { append(.int(Int(value))) }
    mutating func encode(_ value: Int64) { append(.int(Int(value))) }
    mutating func encode(_ value: UInt) { append(JSONValue(value)) }
    mutating func encode(_ value: UInt8) { append(.int(Int(value))) }
    mutating func encode(_ value: UInt16) { append(.int(Int(value))) }
    mutating func encode(_ value: UInt32) { append(.int(Int(value))) }
    mutating func encode(_ value: UInt64) { append(JSONValue(value)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        node.elements.append(try JSONValueEncoder.slot(for: value, codingPath: codingPath + [Index(count)]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let child = Node()
        let path = codingPath + [Index(count)]
        node.elements.append(.node(child))
        return NodeEncoder(node: child, codingPath: path).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let child = Node()
        let path = codingPath + [Index(count)]
        node.elements.append(.node(child))
        return NodeEncoder(node: child, codingPath: path).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let child = Node()
        let path = codingPath + [Index(count)]
        node.elements.append(.node(child))
        return NodeEncoder(node: child, codingPath: path)
    }

    /// The coding key of an array element.
    private struct Index: CodingKey {
        let intValue: Int?
        var stringValue: String { "\(intValue ?? 0)" }
        init(_ index: Int) { intValue = index }
        init?(stringValue: String) { nil }
        init?(intValue: Int) { self.intValue = intValue }
    }
}

private struct SingleValueContainer: SingleValueEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]

    private func set(_ value: JSONValue) {
        node.shape = .single(value)
    }

    mutating func encodeNil() { set(.null) }
    mutating func encode(_ value: Bool) { set(.bool(value)) }
    mutating func encode(_ value: String) { set(.string(value)) }
    mutating func encode(_ value: Double) { set(.double(value)) }
    mutating func encode(_ value: Float) { set(.double(Double(value))) }
    mutating func encode(_ value: Int) { set(.int(value)) }
    mutating func encode(_ value: Int8) { set(.int(Int(value))) }
    mutating func encode(_ value: Int16) { set(.int(Int(value))) }
    mutating func encode(_ value: Int32) { set(.int(Int(value))) }
    mutating func encode(_ value: Int64) { set(.int(Int(value))) }
    mutating func encode(_ value: UInt) { set(JSONValue(value)) }
    mutating func encode(_ value: UInt8) { set(.int(Int(value))) }
    mutating func encode(_ value: UInt16) { set(.int(Int(value))) }
    mutating func encode(_ value: UInt32) { set(.int(Int(value))) }
    mutating func encode(_ value: UInt64) { set(JSONValue(value)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        switch try JSONValueEncoder.slot(for: value, codingPath: codingPath) {
        case .value(let value): set(value)
        case .node(let child):
            node.shape = child.shape
            node.members = child.members
            node.elements = child.elements
        }
    }
}

extension JSONValue {
    /// An unsigned number: an integer while it fits in `Int`.
    fileprivate init(_ value: some UnsignedInteger) {
        self = Int(exactly: value).map(JSONValue.int) ?? .double(Double(value))
    }
}
