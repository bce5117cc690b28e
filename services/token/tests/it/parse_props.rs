//! Property tests of token parsing and verification: arbitrary input and every one-character
//! change of a genuine token are refused with `token_invalid` (or `token_expired`), never
//! accepted, never another error, never a panic.
use crate::support::TokenServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use uuid::Uuid;
use warden_common::ErrorCode;
use warden_token::{TokenApi, TokenKind};

const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn refused(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::TokenInvalid | ErrorCode::TokenExpired)
}

#[test]
fn arbitrary_input_and_mutated_tokens_are_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let server = runtime.block_on(TokenServer::start());
    let tokens = &server.service;
    let issued = runtime.block_on(tokens.generate_access_token(Uuid::new_v4(), Uuid::new_v4(), None)).unwrap().token;
    assert!(runtime.block_on(tokens.verify_token(&issued, TokenKind::Access)).is_ok());
    let mut runner = TestRunner::new(Config { cases: 512, ..Config::default() });

    // Arbitrary strings, JWT-shaped or not.
    let shaped = "[A-Za-z0-9_=+/.-]{0,400}";
    let any_text = ".{0,300}";
    for strategy in [shaped, any_text] {
        runner
            .run(&strategy, |input| {
                for kind in [TokenKind::Access, TokenKind::Refresh] {
                    match runtime.block_on(tokens.verify_token(&input, kind)) {
                        Ok(v) => prop_assert!(false, "accepted {input:?} as {kind:?}: {v:?}"),
                        Err(e) => prop_assert!(refused(e.code), "{input:?}: {:?}", e.code),
                    }
                }
                Ok(())
            })
            .unwrap();
    }

    // Every position of the genuine token replaced by any other base64url character (or a
    // dot): the signature covers the header and payload as encoded, and the signature's
    // encoding must be canonical, so no single change may verify.
    let positions = 0..issued.len();
    let replacement = proptest::sample::select(format!("{BASE64URL}.").chars().collect::<Vec<_>>());
    runner
        .run(&(positions, replacement), |(at, with)| {
            let original = issued.as_bytes()[at] as char;
            prop_assume!(original != with);
            let mut mutated = issued.clone();
            mutated.replace_range(at..at + 1, &with.to_string());
            match runtime.block_on(tokens.verify_token(&mutated, TokenKind::Access)) {
                Ok(_) => prop_assert!(false, "position {at}: {original:?} -> {with:?} still verifies"),
                Err(e) => prop_assert!(refused(e.code), "position {at}: {:?}", e.code),
            }
            Ok(())
        })
        .unwrap();
}
