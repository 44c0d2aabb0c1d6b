//! Integration tests of `ssehub serve`: real servers on ephemeral ports, real HTTP.

mod hub {
    pub(crate) mod redis_server;
    pub(crate) mod support;

    mod auth;
    mod bad_input;
    pub(crate) mod binary;
    mod cluster_faults;
    mod cluster_presence;
    mod cluster_relay;
    pub(crate) mod cluster_support;
    mod console_token;
    mod demo;
    mod durable_streams;
    mod durable_streams_ops;
    mod durable_streams_relay;
    mod follow;
    mod history;
    mod http1;
    mod ops;
    mod packaging;
    mod pubsub;
    mod relay;
    mod relay_bounds;
    mod relay_compact;
    mod relay_messages;
    mod relay_owner;
    mod relay_passthrough;
    mod relay_responses;
    pub(crate) mod relay_support;
    mod scale_out;
    mod sdk;
    mod sdk_fronts;
    mod streams;
    mod traces;
}
