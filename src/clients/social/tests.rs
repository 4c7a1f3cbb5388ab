//! `connect` checks each platform's credentials before any request.

use super::*;
use futures_util::FutureExt;

struct NoTokens;

impl TokenStore for NoTokens {
    fn load(&self, _: &str) -> BoxFuture<'_, Result<Option<Tokens>, String>> {
        async { Ok(None) }.boxed()
    }
    fn save(&self, _: &str, _: Tokens) -> BoxFuture<'_, Result<(), String>> {
        async { Ok(()) }.boxed()
    }
}

fn try_connect(platform: Platform, creds: &[(&str, &str)]) -> Result<(), SocialError> {
    let spec = AccountSpec {
        name: "acct".into(),
        platform,
        base_url: default_base_url(platform).into(),
        auth_url: default_auth_url(platform).map(str::to_string),
        credentials: creds
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    connect(spec, reqwest::Client::new(), Arc::new(NoTokens)).map(|_| ())
}

#[test]
fn connect_names_the_first_missing_credential_of_each_platform() {
    let first_missing = [
        (Platform::X, "refresh_token"),
        (Platform::Reddit, "client_id"),
        (Platform::Facebook, "page_id"),
        (Platform::Instagram, "user_id"),
        (Platform::Linkedin, "access_token"),
    ];
    for (platform, key) in first_missing {
        let err = try_connect(platform, &[]).unwrap_err();
        assert_eq!((err.kind, err.op.as_str()), (ErrorKind::Auth, "connect"));
        assert!(
            err.message.contains(&format!("`{key}`")),
            "{platform}: {err}"
        );
        assert!(err.message.contains("[social.accounts.acct]"), "{err}");
    }
    // A blank value counts as missing.
    let err = try_connect(
        Platform::Facebook,
        &[("page_id", "1"), ("access_token", " ")],
    );
    assert!(err.unwrap_err().message.contains("`access_token`"));
    // StockTwits without a token connects, for dry runs.
    assert!(try_connect(Platform::Stocktwits, &[]).is_ok());
}
