//! `ssehub token`: mint a JWT for publishers and subscribers.
//!
//! The fix for "why do I get 401": a token made by the same code that checks it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::auth::{self, ClaimFormat, Key, MintClaims, MintTopic};

/// Claim format on the command line.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatArg {
    /// 0.x `mercure` claim (what deployed Mercure clients and hubs speak).
    #[default]
    Mercure,
    /// 1.0 access token (`typ: at+jwt`) with `authorization_details`.
    AuthorizationDetails,
}

/// Arguments of `ssehub token`.
#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// HMAC secret to sign with (the hub's --publisher-jwt-key / --subscriber-jwt-key).
    #[arg(
        long,
        required_unless_present = "key_file",
        conflicts_with = "key_file"
    )]
    pub key: Option<String>,
    /// PEM private key file to sign with (RS256 for RSA, ES256 for EC unless --alg).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Signing algorithm (HS256, HS384, HS512, RS256, ..., ES256, ES384, PS256, ..., EdDSA).
    #[arg(long)]
    pub alg: Option<String>,
    /// `kid` header, for hubs that verify with a JWKS.
    #[arg(long)]
    pub kid: Option<String>,
    /// Topic selector the token may publish to (repeatable; `*` for all).
    #[arg(long, value_name = "SELECTOR")]
    pub publish: Vec<String>,
    /// Private topic selector the token may receive (repeatable; `*` for all).
    #[arg(long, value_name = "SELECTOR")]
    pub subscribe: Vec<String>,
    /// URL pattern the token may publish to (repeatable; authorization-details format only).
    #[arg(long, value_name = "PATTERN")]
    pub publish_urlpattern: Vec<String>,
    /// URL pattern of private topics the token may receive (repeatable; authorization-details only).
    #[arg(long, value_name = "PATTERN")]
    pub subscribe_urlpattern: Vec<String>,
    /// JSON payload attached to the holder's subscriptions.
    #[arg(long, value_name = "JSON")]
    pub payload: Option<String>,
    /// Lifetime, like `40s`, `5m`, `24h`, `7d` (default: none for mercure, 1h for
    /// authorization-details, whose tokens must expire).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub exp: Option<Duration>,
    /// Claim format.
    #[arg(long, value_enum, default_value_t = FormatArg::Mercure)]
    pub format: FormatArg,
    /// `iss` claim (1.0 hubs started with --jwt-issuer check it).
    #[arg(long)]
    pub issuer: Option<String>,
    /// `aud` claim: the hub's resource identifier, by default its
    /// `/.well-known/mercure` URL (required for authorization-details).
    #[arg(long)]
    pub audience: Option<String>,
    /// `sub` claim (identifies the subscriber in subscription events).
    #[arg(long)]
    pub subject: Option<String>,
}

/// Why a duration could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The text is empty.
    #[error("empty duration (write it like 40s, 5m, 24h)")]
    Empty,
    /// A number without a unit, or an unknown unit.
    #[error("invalid duration {0:?} (write it like 40s, 5m, 24h; units: ms, s, m, h, d)")]
    Invalid(String),
    /// The value does not fit.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses durations like `40s`, `5m`, `24h`, `1h30m`, `500ms`, `7d`; a bare
/// number is seconds.
///
/// # Errors
///
/// [`DurationError`] for empty, malformed or overflowing input.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| DurationError::Overflow(s.to_owned()));
    }
    let invalid = || DurationError::Invalid(s.to_owned());
    let overflow = || DurationError::Overflow(s.to_owned());
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| overflow())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(overflow)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(overflow)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(overflow)?),
            _ => return Err(invalid()),
        };
        total = total.checked_add(part).ok_or_else(overflow)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Lifetime given to authorization-details tokens when `--exp` is absent.
const DEFAULT_V1_LIFETIME: Duration = Duration::from_secs(3600);

/// Builds the token `args` describe, without printing it.
///
/// # Errors
///
/// Unreadable or unusable keys, bad `--payload` JSON, URL patterns in the mercure
/// format, or a missing `--audience` for the authorization-details format.
pub fn mint_token(args: &TokenArgs) -> anyhow::Result<String> {
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
    let claims = MintClaims {
        format,
        publish: topics(&args.publish, &args.publish_urlpattern),
        subscribe: topics(&args.subscribe, &args.subscribe_urlpattern),
        payload,
        expires_in,
        issuer: args.issuer.clone(),
        audience: args.audience.clone(),
        subject: args.subject.clone(),
        ..MintClaims::default()
    };
    Ok(auth::mint(&key, claims)?)
}

/// Runs `ssehub token`: prints the token on stdout.
///
/// # Errors
///
/// As [`mint_token`].
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    println!("{}", mint_token(&args)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthConfig, Authorizer, Role, VerifyingKey};
    use clap::Parser;

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
    fn durations() {
        assert_eq!(parse_duration("40s").unwrap(), Duration::from_secs(40));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        for bad in ["5x", "m", "1.5h", "-3s", "5 m"] {
            assert!(
                matches!(parse_duration(bad), Err(DurationError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
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
        let g = hub.verify(&token, Role::Publisher, "unused").unwrap();
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
        let hub = Authorizer::new(config);
        let g = hub
            .verify(
                &token,
                Role::Publisher,
                "https://hub.example.com/.well-known/mercure",
            )
            .unwrap();
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
