//! What `ssehub serve` prints on standard output once it listens: where everything is, and
//! on first run, the generated key with a token to try it. Logs go to standard error.

use std::path::Path;

use ssehub::auth::{Key, MintClaims, MintTopic, mint};

/// What the banner needs to know about the running hub.
pub(crate) struct Banner<'a> {
    /// `http://addr` or `https://addr`.
    pub(crate) base: &'a str,
    /// Whether `--demo` feeds the demo pages.
    pub(crate) demo: bool,
    /// The relay's upstream, `None` for the built-in simulator.
    pub(crate) upstream: Option<&'a str>,
}

impl Banner<'_> {
    /// The lines naming the pages and endpoints.
    pub(crate) fn text(&self) -> String {
        let base = self.base;
        let demos = if self.demo {
            "simulated data on (--demo)"
        } else {
            "start with --demo to feed them"
        };
        let model = match self.upstream {
            None => "the default model is a simulator writing filler text, not a real model (--upstream for one)".to_owned(),
            Some(url) => format!("answers come from {url}"),
        };
        format!(
            "ssehub is serving on {base}\n  \
             chat page          {base}/\n  \
             console            {base}/console\n  \
             demos              {base}/demo/ticker  {base}/demo/logs  {base}/demo/online\n                     \
             {demos}\n  \
             OpenAI-compatible  {base}/v1  (POST /v1/chat/completions)\n                     \
             {model}\n"
        )
    }
}

/// The token a first run prints (and the console offers on this machine): allowed to publish
/// and subscribe to every topic, signed with the generated key.
pub(crate) fn first_run_token(key: &str) -> anyhow::Result<String> {
    let mut claims = MintClaims::default();
    claims.publish = vec![MintTopic::exact("*")];
    claims.subscribe = vec![MintTopic::exact("*")];
    Ok(mint(&Key::secret(key.as_bytes(), None)?, claims)?)
}

/// Tells a first-time user how to use the hub with the key it generated and its `token`.
pub(crate) fn first_run_help(token: &str, base: &str, key_file: &Path) -> String {
    format!(
        "No --publisher-jwt-key was given, so ssehub uses the key stored in {key_file}.\n\
         A token allowed to publish and subscribe to every topic:\n\n    {token}\n\n\
         Try it (two terminals):\n\n    \
         curl -N -H 'Authorization: Bearer {token}' '{base}/.well-known/mercure?topic=/demo'\n    \
         curl -H 'Authorization: Bearer {token}' -d topic=/demo -d data=hello {base}/.well-known/mercure\n\n\
         Mint narrower tokens with `ssehub token --key \"$(cat {key_file})\" --subscribe /demo`.\n\
         The console ({base}/console) fills it in for you when opened on this machine.\n",
        key_file = key_file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_names_every_page_and_says_the_model_is_simulated() {
        let text = Banner {
            base: "http://127.0.0.1:8080",
            demo: false,
            upstream: None,
        }
        .text();
        for part in [
            "http://127.0.0.1:8080/\n",
            "http://127.0.0.1:8080/console",
            "http://127.0.0.1:8080/demo/ticker",
            "http://127.0.0.1:8080/demo/logs",
            "http://127.0.0.1:8080/demo/online",
            "start with --demo",
            "http://127.0.0.1:8080/v1",
            "simulator",
        ] {
            assert!(text.contains(part), "missing {part:?} in\n{text}");
        }
        let real = Banner {
            base: "http://h",
            demo: true,
            upstream: Some("https://api.example/v1"),
        }
        .text();
        assert!(real.contains("simulated data on"));
        assert!(real.contains("answers come from https://api.example/v1"));
        assert!(!real.contains("simulator"));
    }
}
