pub(crate) mod admin;
pub(crate) mod docs;
pub(crate) mod identity;
pub(crate) mod keys;
pub(crate) mod mfa;
pub(crate) mod ops;
pub(crate) mod session;
