/// The request and response types of the HTTP API, named as the OpenAPI document
/// (`GET /openapi.json`) names its schemas: `API.Job` is `#/components/schemas/Job`.
///
/// The server decodes request bodies into them (`RequestDecoding`) and encodes its answers
/// from them; the command-line client, the runner, the benchmarks and the tests decode the
/// answers into the same types. Every JSON body is the envelope `API.Envelope`.
///
/// Keys are written in declaration order, which is the order the document lists them; a field
/// marked `@Nullable` is always written, as `null` when it has no value, while a plain optional
/// is left out when it has none (the few fields documented as "present when …").
public enum API {}
