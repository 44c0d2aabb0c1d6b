//! `ssehub token`: mint a JWT for publishers and subscribers.
//!
//! The fix for "why do I get 401": a token made by the same code that checks it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use ssehub::auth::{self, ClaimFormat, Key, MintClaims, MintTopic};
use ssehub::config::parse_duration;

/// Claim format on the command line.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum FormatArg {
    /// 0.x `mercure` claim (what deployed Mercure clients and hubs speak).
    #[default]
    Mercure,
    /// 1.0 access token (`typ: at+jwt`) with `authorization_details`.
    AuthorizationDetails,
}

/// Arguments of `ssehub token`.
#[derive(clap::Args, Debug)]
pub(crate) struct TokenArgs {
    /// HMAC secret to sign with (the hub's --publisher-jwt-key / --subscriber-jwt-key).
    #[arg(
        long,
        required_unless_present = "key_file",
        conflicts_with = "key_file"
    )]
    pub(crate) key: Option<String>,
    /// PEM private key file to sign with (RS256 for RSA, ES256 for EC unless --alg).
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// Signing algorithm (HS256, HS384, HS512, RS256, ..., ES256, ES384, PS256, ..., EdDSA).
    #[arg(long)]
    pub(crate) alg: Option<String>,
    /// `kid` header, for hubs that verify with a JWKS.
    #[arg(long)]
    pub(crate) kid: Option<String>,
    /// Topic selector the token may publish to (repeatable; `*` for all).
    #[arg(long, value_name = "SELECTOR")]
    pub(crate) publish: Vec<String>,
    /// Private topic selector the token may receive (repeatable; `*` for all).
    #[arg(long, value_name = "SELECTOR")]
    pub(crate) subscribe: Vec<String>,
    /// URL pattern the token may publish to (repeatable; authorization-details format only).
    #[arg(long, value_name = "PATTERN")]
    pub(crate) publish_urlpattern: Vec<String>,
    /// URL pattern of private topics the token may receive (repeatable; authorization-details only).
    #[arg(long, value_name = "PATTERN")]
    pub(crate) subscribe_urlpattern: Vec<String>,
    /// JSON payload attached to the holder's subscriptions.
    #[arg(long, value_name = "JSON")]
    pub(crate) payload: Option<String>,
    /// Lifetime, like `40s`, `5m`, `24h`, `7d` (default: none for mercure, 1h for
    /// authorization-details, whose tokens must expire).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub(crate) exp: Option<Duration>,
    /// Claim format.
    #[arg(long, value_enum, default_value_t = FormatArg::Mercure)]
    pub(crate) format: FormatArg,
    /// `iss` claim (1.0 hubs started with --jwt-issuer check it).
    #[arg(long)]
    pub(crate) issuer: Option<String>,
    /// `aud` claim: the hub's resource identifier, by default its
    /// `/.well-known/mercure` URL (required for authorization-details).
    #[arg(long)]
    pub(crate) audience: Option<String>,
    /// `sub` claim (identifies the subscriber in subscription events).
    #[arg(long)]
    pub(crate) subject: Option<String>,
}

/// Lifetime given to authorization-details tokens when `--exp` is absent.
const DEFAULT_V1_LIFETIME: Duration = Duration::from_secs(3600);

/// Builds the token `args` describe, without printing it.
///
/// # Errors
///
/// Unreadable or unusable keys, bad `--payload` JSON, URL patterns in the mercure
/// format, or a missing `--audience` for the authorization-details format.
pub(crate) fn mint_token(args: &TokenArgs) -> anyhow::Result<String> {
    let alg = args.alg.as_deref().map(auth::parse_algorithm).transpose()?;
    let mut key = match (&args.key, &args.key_file) {
        (Some(secret), None) => Key::secret(secret.as_bytes(), alg)?,
        (None, Some(path)) => Key::from_pem_file(path, alg)
            .with_context(|| format!("cannot use --key-file {}", path.display()))?,
        _ => bail!("give exactly one of --key (HMAC secret) or --key-file (PEM private key)"),
    };
    if let Some(kid) = &args.kid {
        key = key.with_kid(kid);
    }
    let payload = args
        .payload
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
        .context("--payload is not valid JSON")?;
    let format = match args.format {
        FormatArg::Mercure => ClaimFormat::Mercure,
        FormatArg::AuthorizationDetails => ClaimFormat::AuthorizationDetails,
    };
    if format == ClaimFormat::Mercure
        && !(args.publish_urlpattern.is_empty() && args.subscribe_urlpattern.is_empty())
    {
        bail!(
            "url patterns need --format authorization-details (0.x tokens know only exact selectors and uri templates)"
        );
    }
    let mut expires_in = args.exp;
    if format == ClaimFormat::AuthorizationDetails {
        if args.audience.is_none() {
            bail!(
                "--format authorization-details needs --audience: the hub's resource identifier, by default its URL ending in /.well-known/mercure"
            );
        }
        if expires_in.is_none() {
            eprintln!("note: authorization-details tokens must expire; using --exp 1h");
            expires_in = Some(DEFAULT_V1_LIFETIME);
        }
    }
    let topics = |exact: &[String], patterns: &[String]| -> Vec<MintTopic> {
        exact
            .iter()
            .map(MintTopic::exact)
            .chain(patterns.iter().map(MintTopic::url_pattern))
            .collect()
    };
    // MintClaims is non-exhaustive: start from the default and fill in.
    let mut claims = MintClaims::default();
    claims.format = format;
    claims.publish = topics(&args.publish, &args.publish_urlpattern);
    claims.subscribe = topics(&args.subscribe, &args.subscribe_urlpattern);
    claims.payload = payload;
    claims.expires_in = expires_in;
    claims.issuer = args.issuer.clone();
    claims.audience = args.audience.clone();
    claims.subject = args.subject.clone();
    Ok(auth::mint(&key, claims)?)
}

/// Runs `ssehub token`: prints the token on stdout.
///
/// # Errors
///
/// As [`mint_token`].
pub(crate) fn run(args: TokenArgs) -> anyhow::Result<()> {
    println!("{}", mint_token(&args)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use ssehub::auth::{AuthConfig, Authorizer, Role, VerifyingKey};

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: TokenArgs,
    }

    fn args(argv: &[&str]) -> TokenArgs {
        let mut full = vec!["token"];
        full.extend_from_slice(argv);
        Cli::try_parse_from(full).unwrap().args
    }

    #[test]
    fn minted_mercure_token_verifies_on_the_hub() {
        let a = args(&[
            "--key",
            "!ChangeMe!",
            "--publish",
            "https://example.com/books/{id}",
            "--subscribe",
            "*",
            "--payload",
            r#"{"user":"alice"}"#,
            "--exp",
            "5m",
        ]);
        let token = mint_token(&a).unwrap();
        let hub = Authorizer::new(AuthConfig::new(
            VerifyingKey::from_config("!ChangeMe!", None).unwrap(),
        ));
        let g = hub.verify(&token, Role::Publisher).unwrap();
        assert!(g.can_publish("https://example.com/books/1"));
        assert!(g.can_subscribe(&["x"]));
        assert_eq!(g.payload.unwrap()["user"], "alice");
        assert!(g.expires_at.is_some());
    }

    #[test]
    fn minted_v1_token_verifies_on_the_hub() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        let a = args(&[
            "--key-file",
            &format!("{dir}ec_private.pem"),
            "--format",
            "authorization-details",
            "--publish-urlpattern",
            "https://example.com/books/:id",
            "--audience",
            "https://hub.example.com/.well-known/mercure",
            "--issuer",
            "https://auth.example.com",
        ]);
        let token = mint_token(&a).unwrap();
        let mut config = AuthConfig::new(
            VerifyingKey::from_config(&format!("{dir}ec_public.pem"), Some("ES256")).unwrap(),
        );
        config.issuers = vec!["https://auth.example.com".into()];
        config.resource_identifier = Some("https://hub.example.com/.well-known/mercure".into());
        let hub = Authorizer::new(config);
        let g = hub.verify(&token, Role::Publisher).unwrap();
        assert!(g.can_publish("https://example.com/books/7"));
        // The default 1.0 lifetime applied.
        assert!(g.expires_at.is_some());
    }

    #[test]
    fn cli_refusals() {
        let url_in_mercure = args(&["--key", "k", "--publish-urlpattern", "https://e.com/:id"]);
        assert!(mint_token(&url_in_mercure).is_err());
        let v1_without_aud = args(&["--key", "k", "--format", "authorization-details"]);
        let err = mint_token(&v1_without_aud).unwrap_err();
        assert!(format!("{err:#}").contains("--audience"));
        let bad_payload = args(&["--key", "k", "--payload", "{"]);
        assert!(mint_token(&bad_payload).is_err());
        let bad_alg = args(&["--key", "k", "--alg", "RS256"]);
        assert!(mint_token(&bad_alg).is_err());
        let missing_file = args(&["--key-file", "/nonexistent.pem"]);
        assert!(mint_token(&missing_file).is_err());
        let mut full = vec!["token"];
        full.extend_from_slice(&["--publish", "*"]);
        assert!(Cli::try_parse_from(full).is_err(), "a key is required");
        assert!(Cli::try_parse_from(["token", "--key", "k", "--exp", "soon"]).is_err());
    }
}
