//! Issue #15, trust boundaries: dev login only when asked for, same-origin WebSockets by
//! default, readiness on the live bus state, revocation of open sockets from Redis.

mod support;

mod trust {
    mod dev_login;
    mod origin;
    mod readiness;
    mod revocation;
}
