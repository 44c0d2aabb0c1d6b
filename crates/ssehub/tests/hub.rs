//! Integration tests of `ssehub serve`: real servers on ephemeral ports, real HTTP.

mod hub {
    pub(crate) mod support;

    mod auth;
    mod bad_input;
    mod binary;
    mod durable_streams;
    mod history;
    mod http1;
    mod ops;
    mod pubsub;
    mod relay;
    mod sdk;
    mod streams;
}
