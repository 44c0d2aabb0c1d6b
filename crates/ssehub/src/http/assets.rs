//! The browser side, compiled into the binary so that `ssehub serve` is self-contained: the
//! chat page (`GET /`, with `GET /chat.css`), the topic console (`GET /console`), the demo pages (`GET /demo/ticker`,
//! `/demo/logs`, `/demo/online`, with their shared module `/demo/demo.js` and stylesheet
//! `/demo/demo.css`) and the ES module
//! they all use (`GET /ssehub.js`). The sources live in `web/` at the workspace root, where
//! their own tests run.
//!
//! Every answer carries `Cache-Control: no-cache` (a new binary must never be paired with an
//! old cached module) and `X-Content-Type-Options: nosniff` (the module is only ever run as
//! JavaScript, the pages only as HTML).

use axum::response::{IntoResponse, Response};
use http::header;

/// The chat page: prompt box, streamed answer, stop, resume after reload, watch link.
pub(super) const CHAT_HTML: &str = include_str!("../../../../web/index.html");

/// The chat page's stylesheet.
pub(super) const CHAT_CSS: &str = include_str!("../../../../web/chat.css");

/// The console: subscribe to Mercure topics, publish, watch events arrive.
pub(super) const CONSOLE_HTML: &str = include_str!("../../../../web/console.html");

/// The browser module: fetch-based SSE with reconnection, an EventSource-compatible class,
/// safe Markdown rendering.
pub(super) const MODULE_JS: &str = include_str!("../../../../web/ssehub.js");

/// The ticker demo: simulated prices with sparklines (`--demo` feeds it).
pub(super) const TICKER_HTML: &str = include_str!("../../../../web/demo/ticker.html");

/// The log tail demo: lines published by `ssehub publish --follow`, levels coloured.
pub(super) const LOGS_HTML: &str = include_str!("../../../../web/demo/logs.html");

/// The online counter demo: who has the page open, from subscription events.
pub(super) const ONLINE_HTML: &str = include_str!("../../../../web/demo/online.html");

/// What the demo pages share: a subscription that resumes after a reload and says so.
pub(super) const DEMO_JS: &str = include_str!("../../../../web/demo/demo.js");

/// What the demo pages share in looks: palette, header, status footer.
pub(super) const DEMO_CSS: &str = include_str!("../../../../web/demo/demo.css");

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the chat page.
pub(crate) async fn chat() -> Response {
    asset(HTML, CHAT_HTML)
}

/// `GET /chat.css`: the chat page's stylesheet.
pub(crate) async fn chat_styles() -> Response {
    asset(CSS, CHAT_CSS)
}

/// `GET /console`: the topic console.
pub(crate) async fn console() -> Response {
    asset(HTML, CONSOLE_HTML)
}

/// `GET /ssehub.js`: the browser module.
pub(crate) async fn module() -> Response {
    asset(JAVASCRIPT, MODULE_JS)
}

/// `GET /demo/ticker`
pub(crate) async fn ticker() -> Response {
    asset(HTML, TICKER_HTML)
}

/// `GET /demo/logs`
pub(crate) async fn logs() -> Response {
    asset(HTML, LOGS_HTML)
}

/// `GET /demo/online`
pub(crate) async fn online() -> Response {
    asset(HTML, ONLINE_HTML)
}

/// `GET /demo/demo.js`
pub(crate) async fn demo_module() -> Response {
    asset(JAVASCRIPT, DEMO_JS)
}

/// `GET /demo/demo.css`
pub(crate) async fn demo_styles() -> Response {
    asset(CSS, DEMO_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http_body_util::BodyExt;

    async fn body(response: Response) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn module_is_served_as_javascript_and_never_cached_stale() {
        let response = module().await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], JAVASCRIPT);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(
            response.headers()[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff"
        );
        assert!(body(response).await.contains("export class EventSource"));
    }

    #[tokio::test]
    async fn pages_are_html_and_load_the_module() {
        for (response, marker) in [
            (chat().await, "<title>ssehub chat"),
            (console().await, "<title>ssehub console"),
        ] {
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[header::CONTENT_TYPE], HTML);
            let text = body(response).await;
            assert!(text.contains(marker), "missing {marker}");
            assert!(text.contains("from '/ssehub.js'"));
        }
    }

    #[tokio::test]
    async fn demo_pages_are_html_and_load_the_shared_module() {
        for (response, marker) in [
            (ticker().await, "<title>ssehub demo: ticker"),
            (logs().await, "<title>ssehub demo: log tail"),
            (online().await, "<title>ssehub demo: online now"),
        ] {
            assert_eq!(response.headers()[header::CONTENT_TYPE], HTML);
            let text = body(response).await;
            assert!(text.contains(marker), "missing {marker}");
            assert!(text.contains("from '/demo/demo.js'"));
            assert!(text.contains("Content-Security-Policy"));
            assert!(text.contains(r#"<link rel="stylesheet" href="/demo/demo.css">"#));
            assert!(text.contains("style-src 'self' 'unsafe-inline'"));
        }
        let module = demo_module().await;
        assert_eq!(module.headers()[header::CONTENT_TYPE], JAVASCRIPT);
        assert!(body(module).await.contains("from '/ssehub.js'"));
        let chat = chat_styles().await;
        assert_eq!(chat.headers()[header::CONTENT_TYPE], CSS);
        assert!(body(chat).await.contains("#conversation"));
        let styles = demo_styles().await;
        assert_eq!(styles.headers()[header::CONTENT_TYPE], CSS);
        assert_eq!(styles.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(body(styles).await.contains(".state[data-state=\"open\"]"));
    }
}
