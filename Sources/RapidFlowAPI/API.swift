/// The request and response types of the HTTP API, named as the OpenAPI document
/// (`GET /openapi.json`) names its schemas: `API.PipelineDefinition` is
/// `#/components/schemas/PipelineDefinition`.
///
/// The server decodes request bodies into them (`RequestDecoding`); the command-line client
/// and the runner encode their requests from the same types.
public enum API {}
