//! The client's side of authentication: answering a `WWW-Authenticate` challenge with Basic
//! credentials or a Bearer token fetched from the realm, one token per scope. Parsing the
//! challenge and finding credentials are `auth`.

use super::excerpt::error_message;
use super::transport::CapError;
use super::*;

impl Client {
    pub(super) fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        scope: &Scope,
    ) -> reqwest::RequestBuilder {
        if let Some(token) = self
            .tokens
            .lock()
            .ok()
            .and_then(|t| t.get(&scope.key()).cloned())
        {
            return request.bearer_auth(token);
        }
        match (&self.credentials, self.basic.load(Ordering::Relaxed)) {
            (Some(credentials), true) => {
                request.basic_auth(&credentials.username, Some(&credentials.password))
            }
            _ => request,
        }
    }

    pub(super) async fn answer(
        &self,
        challenge: Option<Challenge>,
        scope: &Scope,
    ) -> Result<(), Error> {
        match challenge {
            Some(Challenge::Basic) => {
                if self.credentials.is_none() {
                    return Err(Error::Unauthorized {
                        registry: self.host.clone(),
                        hint: "the registry wants a username and password: pass --creds user:pass or log in with docker/podman".into(),
                    });
                }
                self.basic.store(true, Ordering::Relaxed);
                Ok(())
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = self.fetch_token(&realm, service.as_deref(), scope).await?;
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.insert(scope.key(), token);
                }
                Ok(())
            }
            None => Err(Error::Unauthorized {
                registry: self.host.clone(),
                hint: "the registry sent no usable WWW-Authenticate challenge".into(),
            }),
        }
    }

    pub(super) async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<String, Error> {
        let error = |reason: String| Error::Token {
            registry: self.host.clone(),
            realm: realm.to_string(),
            reason,
        };
        let url =
            reqwest::Url::parse(realm).map_err(|e| error(format!("invalid realm URL: {e}")))?;
        if url.scheme() != "https" && !(url.scheme() == "http" && self.options.insecure) {
            return Err(error(
                "the token realm is not HTTPS (use --insecure only for test registries)".into(),
            ));
        }
        if let Some(allowed) = &self.options.allowed_hosts
            && !auth::on_hosts(&url, allowed)
        {
            return Err(error(format!(
                "the token realm's host `{}` is outside the allowlist (the registry's own host and \
                 its `redirect_hosts`), so it was not contacted",
                auth::authority(&url)
            )));
        }
        if self.credentials.is_some() && !auth::realm_may_get_credentials(&url, &self.host) {
            return Err(error(format!(
                "the realm is plain HTTP on `{}`, another host than the registry; credentials go \
                 only to a token service on HTTPS or on the registry's own host, so they were not sent",
                url.host_str().unwrap_or_default()
            )));
        }
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = service {
            query.push(("service", service));
        }
        for item in &scope.0 {
            query.push(("scope", item));
        }
        if let Some(credentials) = &self.credentials {
            query.push(("account", &credentials.username));
        }
        let mut attempt = 0;
        let response = loop {
            let mut request = self.http.get(url.clone()).query(&query);
            if let Some(credentials) = &self.credentials {
                request = request.basic_auth(&credentials.username, Some(&credentials.password));
            }
            match request.send().await {
                Ok(response)
                    if matches!(response.status().as_u16(), 429 | 500 | 502 | 503 | 504)
                        && attempt < self.options.retries =>
                {
                    attempt += 1;
                    self.backoff(attempt, None).await;
                }
                Ok(response) => break response,
                Err(e) if attempt < self.options.retries && (e.is_connect() || e.is_timeout()) => {
                    attempt += 1;
                    self.backoff(attempt, None).await;
                }
                Err(e) => return Err(error(e.to_string())),
            }
        };
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                registry: self.host.clone(),
                hint:
                    "the token service refused the credentials (check --creds or the stored login)"
                        .into(),
            });
        }
        let body = match self
            .read_small(response, 64 * 1024, "the token answer")
            .await
        {
            Ok(body) => body,
            Err(CapError::Timeout(timeout)) => return Err(timeout),
            Err(e) => return Err(error(e.to_string())),
        };
        if !status.is_success() {
            return Err(error(format!(
                "HTTP {}: {}",
                status.as_u16(),
                error_message(&body)
            )));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: Token = serde_json::from_slice(&body)
            .map_err(|_| error("the answer is not a token JSON document".into()))?;
        parsed
            .token
            .or(parsed.access_token)
            .ok_or_else(|| error("the answer holds no token".into()))
    }
}
