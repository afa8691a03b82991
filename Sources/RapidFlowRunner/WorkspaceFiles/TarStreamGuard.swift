import Foundation

/// Reads a tar stream on its way to `tar -x` and lets through only entries that stay inside
/// the target: it sees every header before the extractor does, so a refused entry is never
/// written. Refused: absolute names, `..` components, a name below a symlink (one the archive
/// made, or one already in the target), hard links out, device files, FIFOs and global pax
/// headers; and more than `maxFiles` entries or `maxBytes` of file data. A symlink itself is
/// restored as it was saved (a virtualenv's `python3 -> /usr/bin/python3`), never followed.
struct TarStreamGuard {
    struct Refusal: Error, CustomStringConvertible {
        var description: String
    }

    let target: String
    let maxFiles: Int
    let maxBytes: Int

    private(set) var files = 0
    private(set) var bytes = 0
    /// The stream's end (two zero blocks) was seen.
    private(set) var ended = false

    /// Bytes held back: a header not yet complete.
    private var pending: [UInt8] = []
    /// Data bytes (with padding) of the current entry still to pass.
    private var dataLeft = 0
    /// The current entry's data is an extended header (GNU long name or pax) being collected.
    private var collecting: UInt8?
    private var collected: [UInt8] = []
    private var longName: String?
    private var longLink: String?
    private var paxPath: String?
    private var paxLink: String?
    private var paxSize: Int?
    private var zeroBlocks = 0
    private var symlinks = Set<String>()
    private var checkedDirectories = Set<String>()

    init(target: String, maxFiles: Int, maxBytes: Int) {
        self.target = target
        self.maxFiles = maxFiles
        self.maxBytes = maxBytes
    }

    /// Takes the next bytes of the stream and returns those that may go on to the extractor:
    /// all of them but an incomplete header, which is held for the next call. Data is only
    /// looked at, never copied, except for a header cut by the chunk's end. Throws at the first
    /// refused entry.
    mutating func pass(_ chunk: Data) throws(Refusal) -> Data {
        let input: Data
        if pending.isEmpty {
            input = chunk
        } else {
            var joined = Data(pending)
            joined.append(chunk)
            input = joined
            pending = []
        }
        var index = input.startIndex
        var safe = index
        while index < input.endIndex {
            if ended {
                index = input.endIndex
                safe = index
                break
            }
            if dataLeft > 0 {
                let take = min(dataLeft, input.endIndex - index)
                if collecting != nil { collected.append(contentsOf: input[index..<(index + take)]) }
                dataLeft -= take
                index += take
                safe = index
                if dataLeft == 0, let kind = collecting { try finishExtended(kind) }
                continue
            }
            guard input.endIndex - index >= 512 else {
                pending = [UInt8](input[index...])
                break
            }
            try take([UInt8](input[index..<(index + 512)]))
            index += 512
            safe = index
        }
        return input[input.startIndex..<safe]
    }

    /// Bytes of a checked entry's file data (with padding) that come next: they may go to the
    /// extractor without being looked at (moved inside the kernel). 0 when a header, an
    /// extended header's data or the end comes next.
    var plainDataAhead: Int { collecting == nil && !ended && pending.isEmpty ? dataLeft : 0 }

    /// `count` bytes of `plainDataAhead` went to the extractor unseen.
    mutating func skippedPlainData(_ count: Int) {
        precondition(count <= plainDataAhead)
        dataLeft -= count
    }

    /// How many bytes to read next so that a read never takes data that could be moved unseen:
    /// the rest of a header block, or of an extended header's data.
    var bytesWanted: Int {
        if ended { return 1 << 20 }
        if dataLeft > 0 { return min(dataLeft, 1 << 20) }
        return 512 - pending.count
    }

    /// The stream ended: an archive cut short is refused too.
    func finish() throws(Refusal) {
        guard pending.isEmpty, dataLeft == 0 else { throw Refusal(description: "the archive is cut short") }
    }

    private mutating func take(_ header: [UInt8]) throws(Refusal) {
        if header.allSatisfy({ $0 == 0 }) {
            zeroBlocks += 1
            if zeroBlocks >= 2 { ended = true }
            return
        }
        zeroBlocks = 0
        guard Self.checksumMatches(header) else { throw Refusal(description: "the archive has a damaged header") }
        let type = header[156]
        var size = try Self.octal(header[124..<136])
        switch type {
        case UInt8(ascii: "L"), UInt8(ascii: "K"), UInt8(ascii: "x"):
            guard size <= 1 << 20 else { throw Refusal(description: "the archive has an extended header over 1 MiB") }
            collecting = type
            collected = []
            dataLeft = Self.padded(size)
            if dataLeft == 0 { try finishExtended(type) }
            return
        case UInt8(ascii: "g"):
            throw Refusal(description: "the archive has a global extended header, which a cache never holds")
        default:
            break
        }
        let name = try Self.clean(paxPath ?? longName ?? Self.ustarName(header))
        let link = paxLink ?? longLink ?? Self.string(header[157..<257])
        if let paxSize { size = paxSize }
        paxPath = nil
        paxLink = nil
        paxSize = nil
        longName = nil
        longLink = nil

        try checkParents(of: name)
        switch type {
        case 0, UInt8(ascii: "0"), UInt8(ascii: "7"):
            bytes += size
        case UInt8(ascii: "5"):
            break
        case UInt8(ascii: "2"):
            guard !link.isEmpty else { throw Refusal(description: "'\(name)' is a symlink to nothing") }
            symlinks.insert(name)
            size = 0
        case UInt8(ascii: "1"):
            let linked = try Self.clean(link)
            try checkParents(of: linked)
            if symlinks.contains(linked) { throw Refusal(description: "'\(name)' is a hard link to a symlink") }
            size = 0
        case UInt8(ascii: "3"), UInt8(ascii: "4"):
            throw Refusal(description: "'\(name)' is a device file")
        case UInt8(ascii: "6"):
            throw Refusal(description: "'\(name)' is a FIFO")
        default:
            throw Refusal(description: "'\(name)' is of a kind a cache never holds (tar type '\(Character(Unicode.Scalar(type)))')")
        }
        files += 1
        if files > maxFiles { throw Refusal(description: "the archive holds more than \(maxFiles) entries") }
        if bytes > maxBytes { throw Refusal(description: "the archive unpacks to more than \(maxBytes >> 20) MiB") }
        dataLeft = Self.padded(size)
    }

    private mutating func finishExtended(_ kind: UInt8) throws(Refusal) {
        collecting = nil
        let data = collected
        collected = []
        switch kind {
        case UInt8(ascii: "L"): longName = Self.string(data[...])
        case UInt8(ascii: "K"): longLink = Self.string(data[...])
        default:
            // pax records: "<length> <key>=<value>\n".
            var index = 0
            while index < data.count {
                guard let space = data[index...].firstIndex(of: UInt8(ascii: " ")),
                    let length = Int(String(decoding: data[index..<space], as: UTF8.self)), length > 0, index + length <= data.count
                else { break }
                let record = String(decoding: data[(space + 1)..<(index + length - 1)], as: UTF8.self)
                if let equals = record.firstIndex(of: "=") {
                    let key = record[..<equals]
                    let value = String(record[record.index(after: equals)...])
                    switch key {
                    case "path": paxPath = value
                    case "linkpath": paxLink = value
                    case "size": paxSize = Int(value)
                    default: break
                    }
                }
                index += length
            }
        }
    }

    /// No part of the path above `name` may be a symlink: none the archive made, none in the target.
    private mutating func checkParents(of name: String) throws(Refusal) {
        let parts = name.split(separator: "/")
        guard parts.count > 1 else { return }
        var path = ""
        for part in parts.dropLast() {
            path = path.isEmpty ? String(part) : path + "/" + part
            if symlinks.contains(path) { throw Refusal(description: "'\(name)' would be written through the symlink '\(path)'") }
            if checkedDirectories.contains(path) { continue }
            var info = stat()
            if lstat(target + "/" + path, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK {
                throw Refusal(description: "'\(name)' would be written through the symlink '\(path)' in the target")
            }
            checkedDirectories.insert(path)
        }
    }

    /// A member name made relative: `./` dropped; absolute names, `..` and NUL refused.
    static func clean(_ raw: String) throws(Refusal) -> String {
        if raw.hasPrefix("/") { throw Refusal(description: "'\(raw)' is an absolute name") }
        let parts = raw.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        if parts.contains("..") { throw Refusal(description: "'\(raw)' contains '..'") }
        if raw.contains("\0") { throw Refusal(description: "a name holds a NUL byte") }
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }

    private static func ustarName(_ header: [UInt8]) -> String {
        let name = string(header[0..<100])
        // ustar: a prefix (155 bytes at 345) when the magic says so.
        guard string(header[257..<263]).hasPrefix("ustar") else { return name }
        let prefix = string(header[345..<500])
        return prefix.isEmpty ? name : prefix + "/" + name
    }

    private static func string(_ bytes: ArraySlice<UInt8>) -> String {
        let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
        return String(decoding: bytes[bytes.startIndex..<end], as: UTF8.self)
    }

    /// A numeric field: octal text, or GNU's base-256 for large sizes.
    private static func octal(_ bytes: ArraySlice<UInt8>) throws(Refusal) -> Int {
        if let first = bytes.first, first & 0x80 != 0 {
            var value = Int(first & 0x7f)
            for byte in bytes.dropFirst() {
                guard value < Int.max >> 8 else { throw Refusal(description: "the archive has a size too large") }
                value = value << 8 | Int(byte)
            }
            return value
        }
        let text = string(bytes).trimmingCharacters(in: CharacterSet(charactersIn: " \0"))
        if text.isEmpty { return 0 }
        guard let value = Int(text, radix: 8), value >= 0 else { throw Refusal(description: "the archive has a damaged size field") }
        return value
    }

    private static func padded(_ size: Int) -> Int { (size + 511) / 512 * 512 }

    private static func checksumMatches(_ header: [UInt8]) -> Bool {
        var sum = 0
        for (index, byte) in header.enumerated() { sum += (148..<156).contains(index) ? 32 : Int(byte) }
        let stored = string(header[148..<156][...]).trimmingCharacters(in: CharacterSet(charactersIn: " \0"))
        return Int(stored, radix: 8) == sum
    }
}
