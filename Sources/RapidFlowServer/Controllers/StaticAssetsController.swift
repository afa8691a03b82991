import Hummingbird

/// The files compiled into the binary: the web dashboard at `/` and the OpenAPI document.
///
/// They are served without the bearer token: the dashboard asks the reader for it, and the
/// API description holds nothing secret.
struct StaticAssetsController<Context: RequestContext> {
    struct Asset: Sendable {
        let bytes: [UInt8]
        let contentType: String
    }

    static var assets: [String: Asset] {
        [
            "/": Asset(bytes: PackageResources.index_html, contentType: "text/html; charset=utf-8"),
            "/assets/app.js": Asset(bytes: PackageResources.app_js, contentType: "text/javascript; charset=utf-8"),
            "/assets/style.css": Asset(bytes: PackageResources.style_css, contentType: "text/css; charset=utf-8"),
            "/openapi.json": Asset(bytes: PackageResources.openapi_json, contentType: "application/json; charset=utf-8"),
        ]
    }

    func addRoutes(to router: Router<Context>) {
        for (path, asset) in Self.assets {
            router.get(RouterPath(path)) { _, _ in
                Response(
                    status: .ok,
                    headers: [.contentType: asset.contentType, .cacheControl: "no-cache"],
                    body: .init(byteBuffer: ByteBuffer(bytes: asset.bytes)))
            }
        }
    }
}
