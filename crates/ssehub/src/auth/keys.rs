//! Keys: what verifies tokens (per role) and what signs them (for `ssehub token`).
//!
//! A verifying key fixes the accepted algorithms when it is loaded, from the
//! configured `alg` or from the key type, never from the token: a token cannot
//! talk the hub into checking an RSA public key as an HMAC secret.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

use super::{AuthError, Role};

/// Why a key could not be loaded. Raised at startup, not per request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file could not be read.
    #[error("cannot read key file {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The algorithm name is not one the hub supports.
    #[error("unsupported algorithm {alg:?} (supported: {SUPPORTED_ALGORITHMS})")]
    UnsupportedAlgorithm {
        /// The rejected name.
        alg: String,
    },
    /// The key material does not fit the algorithm.
    #[error("{alg:?} needs {needs}, but the key is {got}")]
    AlgorithmMismatch {
        /// The configured algorithm.
        alg: Algorithm,
        /// The key type the algorithm needs.
        needs: &'static str,
        /// The key type found.
        got: &'static str,
    },
    /// An HMAC secret is empty.
    #[error("the HMAC secret is empty")]
    EmptySecret,
    /// PEM key material could not be parsed.
    #[error("invalid PEM key: {reason}")]
    InvalidPem {
        /// What failed, with a hint where one helps.
        reason: String,
    },
    /// A JWKS document could not be used.
    #[error("invalid JWKS: {reason}")]
    InvalidJwks {
        /// What failed.
        reason: String,
    },
    /// A value shaped like a key file's path names no readable file. Taking it as an HMAC
    /// secret instead would let anyone who reads the configuration sign tokens.
    #[error(
        "{value:?} looks like a key file path, but it cannot be read ({reason}); to use this text itself as an HMAC secret, set the key's algorithm explicitly (HS256)"
    )]
    KeyFileNotFound {
        /// The configured value.
        value: String,
        /// Why the file could not be read.
        reason: String,
    },
}

/// Algorithm names accepted in configuration, for error messages.
pub const SUPPORTED_ALGORITHMS: &str =
    "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

/// Parses an algorithm name (`HS256`, `rs256`, ...).
///
/// # Errors
///
/// [`KeyError::UnsupportedAlgorithm`] for anything else, `none` included.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, KeyError> {
    let upper = name.trim().to_ascii_uppercase();
    let canonical = if upper == "EDDSA" { "EdDSA" } else { &upper };
    canonical
        .parse::<Algorithm>()
        .map_err(|_| KeyError::UnsupportedAlgorithm {
            alg: name.to_owned(),
        })
}

fn family_name(f: AlgorithmFamily) -> &'static str {
    match f {
        AlgorithmFamily::Hmac => "an HMAC secret",
        AlgorithmFamily::Rsa => "an RSA key",
        AlgorithmFamily::Ec => "an EC key",
        AlgorithmFamily::Ed => "an Ed25519 key",
    }
}

fn check_family(alg: Algorithm, got: AlgorithmFamily) -> Result<(), KeyError> {
    let needs = alg.family();
    if needs == got {
        Ok(())
    } else {
        Err(KeyError::AlgorithmMismatch {
            alg,
            needs: family_name(needs),
            got: family_name(got),
        })
    }
}

fn algorithms_for(alg: Option<Algorithm>, family: AlgorithmFamily) -> Vec<Algorithm> {
    match alg {
        Some(a) => vec![a],
        None => family.algorithms().to_vec(),
    }
}

/// Whether a configuration value reads as a file path rather than a secret: the shapes a
/// path to a key takes in practice (absolute, relative with a dot, home-relative, or a key
/// file's extension). Secrets generated for HS256 have none of these.
fn looks_like_path(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    ["/", "./", "../", "~"].iter().any(|p| value.starts_with(p))
        || [".pem", ".json", ".key", ".jwk", ".jwks"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// The file's bytes when a path-shaped value names a readable file, else why not.
fn read_path_shaped(value: &str) -> Result<Vec<u8>, KeyError> {
    std::fs::read(value).map_err(|e| {
        let mut reason = e.to_string();
        if value.starts_with('~') {
            // The shell expands `~`, not the hub; quoted or in an environment file it stays.
            reason.push_str("; `~` is not expanded here, write the full path");
        }
        KeyError::KeyFileNotFound {
            value: value.to_owned(),
            reason,
        }
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| KeyError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// One verification key with the algorithms it accepts.
struct Entry {
    /// `kid` from the JWKS, if any.
    kid: Option<String>,
    /// The key.
    key: DecodingKey,
    /// Accepted algorithms, fixed at load time.
    algorithms: Vec<Algorithm>,
}

/// Verifies the signatures of one role's tokens: an HMAC secret, a PEM public key,
/// or a JWKS (key chosen by the token's `kid`).
pub struct VerifyingKey {
    /// Candidate keys; a single key has one entry without `kid`.
    entries: Vec<Entry>,
    /// Whether the keys came from a JWKS (then `kid` selects the key).
    is_set: bool,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("VerifyingKey")
            .field("keys", &self.entries.len())
            .field("algorithms", &self.algorithms())
            .finish()
    }
}

impl VerifyingKey {
    /// An HMAC shared secret (`HS256` when `alg` is `None`).
    ///
    /// # Errors
    ///
    /// [`KeyError::EmptySecret`], or [`KeyError::AlgorithmMismatch`] for a non-HMAC `alg`.
    pub fn secret(secret: &[u8], alg: Option<Algorithm>) -> Result<Self, KeyError> {
        let alg = alg.unwrap_or(Algorithm::HS256);
        check_family(alg, AlgorithmFamily::Hmac)?;
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Ok(VerifyingKey {
            entries: vec![Entry {
                kid: None,
                key: DecodingKey::from_secret(secret),
                algorithms: vec![alg],
            }],
            is_set: false,
        })
    }

    /// A PEM public key (RSA, EC or Ed25519, `PUBLIC KEY` form). Without `alg`, every
    /// algorithm of the key's family is accepted (`RS*`/`PS*` for RSA, `ES256`/`ES384`
    /// for EC).
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidPem`] when the PEM is not a public key,
    /// [`KeyError::AlgorithmMismatch`] when `alg` does not fit the key type.
    pub fn from_pem(pem: &[u8], alg: Option<Algorithm>) -> Result<Self, KeyError> {
        if std::str::from_utf8(pem).is_ok_and(|s| s.contains("PRIVATE KEY")) {
            return Err(KeyError::InvalidPem {
                reason: "this is a private key; the hub verifies with the public key (openssl pkey -in key.pem -pubout)".into(),
            });
        }
        let (key, family) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            (k, AlgorithmFamily::Rsa)
        } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
            (k, AlgorithmFamily::Ec)
        } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
            (k, AlgorithmFamily::Ed)
        } else {
            return Err(KeyError::InvalidPem {
                reason: "not an RSA, EC or Ed25519 public key".into(),
            });
        };
        if let Some(a) = alg {
            check_family(a, family)?;
        }
        Ok(VerifyingKey {
            entries: vec![Entry {
                kid: None,
                key,
                algorithms: algorithms_for(alg, family),
            }],
            is_set: false,
        })
    }

    /// A JWKS document (`{"keys": [...]}`). Each key accepts its own `alg` when the
    /// JWK names one, else `alg` when given, else its family's algorithms.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidJwks`] when the document does not parse, holds no usable key,
    /// or a key's type does not fit `alg`.
    pub fn from_jwks(json: &[u8], alg: Option<Algorithm>) -> Result<Self, KeyError> {
        let set: JwkSet = serde_json::from_slice(json).map_err(|e| KeyError::InvalidJwks {
            reason: e.to_string(),
        })?;
        let mut entries = Vec::new();
        for jwk in &set.keys {
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
                AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
                AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
                AlgorithmParameters::OctetKey(_) => AlgorithmFamily::Hmac,
                // Unknown key types are skipped, as RFC 7517 section 5 asks.
                _ => continue,
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| KeyError::InvalidJwks {
                reason: format!("key {:?}: {e}", jwk.common.key_id),
            })?;
            let own = match jwk.common.key_algorithm {
                Some(ka) => Some(Algorithm::try_from(ka).map_err(|_| KeyError::InvalidJwks {
                    reason: format!(
                        "key {:?}: alg {ka} is not a signature algorithm",
                        jwk.common.key_id
                    ),
                })?),
                None => alg,
            };
            if let Some(a) = own {
                check_family(a, family).map_err(|e| KeyError::InvalidJwks {
                    reason: format!("key {:?}: {e}", jwk.common.key_id),
                })?;
            }
            entries.push(Entry {
                kid: jwk.common.key_id.clone(),
                key,
                algorithms: algorithms_for(own, family),
            });
        }
        if entries.is_empty() {
            return Err(KeyError::InvalidJwks {
                reason: "no usable signature key".into(),
            });
        }
        Ok(VerifyingKey {
            entries,
            is_set: true,
        })
    }

    /// Builds a key from a configuration value (`--publisher-jwt-key`,
    /// `MERCURE_PUBLISHER_JWT_KEY`, ...) and optional algorithm name:
    /// - an inline PEM (`-----BEGIN ...`) or inline JWKS (`{...}`) is parsed as such;
    /// - with an HMAC `alg`, the value is the secret;
    /// - with another `alg`, the value is a file holding a PEM public key or a JWKS;
    /// - without `alg`, an existing file is loaded as PEM or JWKS (algorithm from the
    ///   key type); a value shaped like a path (`/...`, `./...`, `../...`, `~...`, or
    ///   ending in `.pem`, `.json`, `.key`, `.jwk`, `.jwks`) that names no readable file
    ///   is an error; anything else is an HS256 secret. Set `alg` to `HS256` to use a
    ///   secret that looks like a path.
    ///
    /// # Errors
    ///
    /// [`KeyError`] when the algorithm is unknown or the key does not load;
    /// [`KeyError::KeyFileNotFound`] for a path-shaped value without a readable file.
    pub fn from_config(value: &str, alg: Option<&str>) -> Result<Self, KeyError> {
        let alg = alg
            .filter(|a| !a.trim().is_empty())
            .map(parse_algorithm)
            .transpose()?;
        let trimmed = value.trim_start();
        if trimmed.starts_with("-----BEGIN") {
            return VerifyingKey::from_pem(trimmed.as_bytes(), alg);
        }
        if trimmed.starts_with('{') {
            return VerifyingKey::from_jwks(trimmed.as_bytes(), alg);
        }
        let hmac = alg.is_some_and(|a| a.family() == AlgorithmFamily::Hmac);
        let path = Path::new(value);
        if hmac {
            return VerifyingKey::secret(value.as_bytes(), alg);
        }
        let bytes = if alg.is_none() && looks_like_path(value) {
            read_path_shaped(value)?
        } else if alg.is_none() && !path.is_file() {
            return VerifyingKey::secret(value.as_bytes(), alg);
        } else {
            read_file(path)?
        };
        if bytes.trim_ascii_start().starts_with(b"{") {
            VerifyingKey::from_jwks(&bytes, alg)
        } else {
            VerifyingKey::from_pem(&bytes, alg)
        }
    }

    /// Every algorithm some key accepts (for messages and diagnostics).
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut all: Vec<Algorithm> = Vec::new();
        for a in self.entries.iter().flat_map(|e| e.algorithms.iter()) {
            if !all.contains(a) {
                all.push(*a);
            }
        }
        all
    }

    /// Picks the key for a token's `alg` and `kid`.
    pub(crate) fn select(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        role: Role,
    ) -> Result<&DecodingKey, AuthError> {
        let entry = if self.is_set {
            match kid {
                Some(kid) => self
                    .entries
                    .iter()
                    .find(|e| e.kid.as_deref() == Some(kid))
                    .ok_or_else(|| AuthError::UnknownKey {
                        reason: format!("no key with kid {kid:?} in the {role} JWKS"),
                    })?,
                None if self.entries.len() == 1 => &self.entries[0],
                None => {
                    return Err(AuthError::UnknownKey {
                        reason: format!(
                            "the token has no kid header and the {role} JWKS holds {} keys",
                            self.entries.len()
                        ),
                    });
                }
            }
        } else {
            &self.entries[0]
        };
        if !entry.algorithms.contains(&alg) {
            return Err(AuthError::WrongAlgorithm {
                alg: format!("{alg:?}"),
                role,
                allowed: alg_list(&entry.algorithms),
            });
        }
        Ok(&entry.key)
    }
}

pub(crate) fn alg_list(algs: &[Algorithm]) -> String {
    algs.iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A signing key, for minting tokens (`ssehub token`, tests).
#[derive(Clone)]
pub struct Key {
    /// The private key or secret.
    encoding: EncodingKey,
    /// The algorithm written in the token header.
    alg: Algorithm,
    /// Written as the `kid` header when set, for JWKS-verified hubs.
    kid: Option<String>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// An HMAC secret (`HS256` when `alg` is `None`).
    ///
    /// # Errors
    ///
    /// [`KeyError::EmptySecret`], or [`KeyError::AlgorithmMismatch`] for a non-HMAC `alg`.
    pub fn secret(secret: &[u8], alg: Option<Algorithm>) -> Result<Self, KeyError> {
        let alg = alg.unwrap_or(Algorithm::HS256);
        check_family(alg, AlgorithmFamily::Hmac)?;
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Ok(Key {
            encoding: EncodingKey::from_secret(secret),
            alg,
            kid: None,
        })
    }

    /// A PEM private key (RSA, EC or Ed25519). Without `alg`: `RS256` for RSA,
    /// `ES256` for EC, `EdDSA` for Ed25519.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidPem`] or [`KeyError::AlgorithmMismatch`].
    pub fn from_pem(pem: &[u8], alg: Option<Algorithm>) -> Result<Self, KeyError> {
        let (encoding, default) = if let Ok(k) = EncodingKey::from_rsa_pem(pem) {
            (k, Algorithm::RS256)
        } else if let Ok(k) = EncodingKey::from_ec_pem(pem) {
            (k, Algorithm::ES256)
        } else if let Ok(k) = EncodingKey::from_ed_pem(pem) {
            (k, Algorithm::EdDSA)
        } else {
            return Err(KeyError::InvalidPem {
                reason: "not an RSA, EC or Ed25519 private key".into(),
            });
        };
        let alg = alg.unwrap_or(default);
        check_family(alg, default.family())?;
        Ok(Key {
            encoding,
            alg,
            kid: None,
        })
    }

    /// Reads a PEM private key from a file.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`], or as [`Key::from_pem`].
    pub fn from_pem_file(path: &Path, alg: Option<Algorithm>) -> Result<Self, KeyError> {
        Key::from_pem(&read_file(path)?, alg)
    }

    /// Sets the `kid` header written into minted tokens.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PUBLIC: &str = include_str!("../../tests/fixtures/rsa_public.pem");
    const RSA_PRIVATE: &str = include_str!("../../tests/fixtures/rsa_private.pem");
    const EC_PUBLIC: &str = include_str!("../../tests/fixtures/ec_public.pem");
    const EC_PRIVATE: &str = include_str!("../../tests/fixtures/ec_private.pem");
    const JWKS: &str = include_str!("../../tests/fixtures/jwks.json");

    #[test]
    fn algorithm_names() {
        assert_eq!(parse_algorithm("hs256").unwrap(), Algorithm::HS256);
        assert_eq!(parse_algorithm("EdDSA").unwrap(), Algorithm::EdDSA);
        assert!(matches!(
            parse_algorithm("none"),
            Err(KeyError::UnsupportedAlgorithm { .. })
        ));
    }

    #[test]
    fn pem_keys_infer_their_family() {
        let rsa = VerifyingKey::from_pem(RSA_PUBLIC.as_bytes(), None).unwrap();
        assert!(rsa.algorithms().contains(&Algorithm::RS256));
        assert!(!rsa.algorithms().contains(&Algorithm::HS256));
        let ec = VerifyingKey::from_pem(EC_PUBLIC.as_bytes(), None).unwrap();
        assert_eq!(ec.algorithms(), vec![Algorithm::ES256, Algorithm::ES384]);
    }

    #[test]
    fn mismatched_algorithm_is_refused_at_load() {
        assert!(matches!(
            VerifyingKey::from_pem(RSA_PUBLIC.as_bytes(), Some(Algorithm::ES256)),
            Err(KeyError::AlgorithmMismatch { .. })
        ));
        assert!(matches!(
            VerifyingKey::secret(b"s", Some(Algorithm::RS256)),
            Err(KeyError::AlgorithmMismatch { .. })
        ));
        assert!(matches!(
            VerifyingKey::secret(b"", None),
            Err(KeyError::EmptySecret)
        ));
    }

    #[test]
    fn private_key_given_as_verifying_key_gets_a_hint() {
        let err = VerifyingKey::from_pem(RSA_PRIVATE.as_bytes(), None).unwrap_err();
        assert!(err.to_string().contains("-pubout"), "{err}");
    }

    #[test]
    fn config_values() {
        // Plain string: HS256 secret.
        let k = VerifyingKey::from_config("!ChangeMe!", None).unwrap();
        assert_eq!(k.algorithms(), vec![Algorithm::HS256]);
        // Inline PEM, as Mercure's environment variables carry it.
        let k = VerifyingKey::from_config(RSA_PUBLIC, Some("RS256")).unwrap();
        assert_eq!(k.algorithms(), vec![Algorithm::RS256]);
        // File paths.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        let k = VerifyingKey::from_config(&format!("{dir}ec_public.pem"), None).unwrap();
        assert!(k.algorithms().contains(&Algorithm::ES256));
        let k = VerifyingKey::from_config(&format!("{dir}jwks.json"), Some("RS256")).unwrap();
        assert!(k.is_set);
        // A file path with an explicit HMAC algorithm is the secret itself.
        let k = VerifyingKey::from_config(&format!("{dir}jwks.json"), Some("HS512")).unwrap();
        assert_eq!(k.algorithms(), vec![Algorithm::HS512]);
        assert!(matches!(
            VerifyingKey::from_config("/nonexistent/key.pem", Some("RS256")),
            Err(KeyError::Io { .. })
        ));
        assert!(matches!(
            VerifyingKey::from_config("x", Some("XS1")),
            Err(KeyError::UnsupportedAlgorithm { .. })
        ));
    }

    /// Regression (issue 15): `--publisher-jwt-key /etc/ssehub/publisher.pem` without such a
    /// file started the hub with the path's text as the HS256 secret.
    #[test]
    fn a_missing_key_path_is_not_taken_as_the_hmac_secret() {
        for value in [
            "/etc/ssehub/publisher.pem",
            "./keys/pub.pem",
            "../pub.pem",
            "~/ssehub/pub.pem",
            "publisher.pem",
            "keys/jwks.json",
            "hub.KEY",
            "set.jwk",
            "set.jwks",
        ] {
            let err = VerifyingKey::from_config(value, None).unwrap_err();
            assert!(
                matches!(err, KeyError::KeyFileNotFound { .. }),
                "{value}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(value), "{message}");
            assert!(message.contains("HS256"), "{message}");
        }
        let home = VerifyingKey::from_config("~/pub.pem", None).unwrap_err();
        assert!(home.to_string().contains("not expanded"), "{home}");
        // A directory is not a key file either.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        assert!(matches!(
            VerifyingKey::from_config(dir, None),
            Err(KeyError::KeyFileNotFound { .. })
        ));
        // The way out for a secret that looks like a path: say it is an HMAC secret.
        let k = VerifyingKey::from_config("/etc/ssehub/publisher.pem", Some("HS256")).unwrap();
        assert_eq!(k.algorithms(), vec![Algorithm::HS256]);
        // Secrets that do not look like paths are unchanged.
        for secret in ["!ChangeMe!", "c2VjcmV0/with+slash=", "a.b"] {
            assert!(VerifyingKey::from_config(secret, None).is_ok(), "{secret}");
        }
    }

    #[test]
    fn jwks_selects_by_kid() {
        let k = VerifyingKey::from_jwks(JWKS.as_bytes(), None).unwrap();
        assert!(
            k.select(Algorithm::RS256, Some("main"), Role::Subscriber)
                .is_ok()
        );
        // "main" pins RS256; "other" accepts the RSA family.
        assert!(matches!(
            k.select(Algorithm::PS256, Some("main"), Role::Subscriber),
            Err(AuthError::WrongAlgorithm { .. })
        ));
        assert!(
            k.select(Algorithm::PS256, Some("other"), Role::Subscriber)
                .is_ok()
        );
        assert!(matches!(
            k.select(Algorithm::RS256, Some("nope"), Role::Subscriber),
            Err(AuthError::UnknownKey { .. })
        ));
        assert!(matches!(
            k.select(Algorithm::RS256, None, Role::Subscriber),
            Err(AuthError::UnknownKey { .. })
        ));
        assert!(matches!(
            VerifyingKey::from_jwks(b"{\"keys\": []}", None),
            Err(KeyError::InvalidJwks { .. })
        ));
        assert!(matches!(
            VerifyingKey::from_jwks(b"not json", None),
            Err(KeyError::InvalidJwks { .. })
        ));
    }

    #[test]
    fn signing_keys() {
        assert_eq!(
            Key::from_pem(RSA_PRIVATE.as_bytes(), None)
                .unwrap()
                .algorithm(),
            Algorithm::RS256
        );
        assert_eq!(
            Key::from_pem(EC_PRIVATE.as_bytes(), None)
                .unwrap()
                .algorithm(),
            Algorithm::ES256
        );
        assert!(matches!(
            Key::from_pem(EC_PRIVATE.as_bytes(), Some(Algorithm::RS256)),
            Err(KeyError::AlgorithmMismatch { .. })
        ));
        assert!(matches!(
            Key::from_pem(b"garbage", None),
            Err(KeyError::InvalidPem { .. })
        ));
        assert!(Key::secret(b"k", Some(Algorithm::HS384)).is_ok());
    }
}
