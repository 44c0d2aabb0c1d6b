//! Fuzzes token verification, which takes attacker-chosen bytes from headers, queries and
//! cookies: any input must give grants or a typed error, never a panic.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run token -- -max_total_time=180`

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ssehub::auth::{AuthConfig, Authorizer, Role, VerifyingKey};

fn authorizer() -> &'static Authorizer {
    static AUTH: OnceLock<Authorizer> = OnceLock::new();
    AUTH.get_or_init(|| {
        let mut config = AuthConfig::new(VerifyingKey::secret(b"fuzz-secret", None).unwrap());
        config.resource_identifier = Some("https://hub.example/.well-known/mercure".to_owned());
        Authorizer::new(config)
    })
}

fuzz_target!(|input: &[u8]| {
    let Ok(token) = std::str::from_utf8(input) else {
        return;
    };
    for role in [Role::Publisher, Role::Subscriber] {
        let _ = authorizer().verify(token, role);
    }
});
