//! Webhook deliveries: a table of sources (CNCF distribution, Docker Hub, GitHub) behind one
//! handler that authenticates the sender, parses the body with `hooks`, checks the allowlist,
//! resolves a tag to a digest where the payload has none, and enqueues. It never scans.

use super::*;

/// Enqueues pushed images (already checked against the allowlist); `outside` names those of
/// the delivery that were not, for the answer.
pub(super) async fn enqueue(
    state: &App,
    source: &'static str,
    pushed: Vec<(hooks::Pushed, String)>,
    callback_url: Option<String>,
    outside: Vec<String>,
) -> Result<Response, AppError> {
    let now = now_ms();
    let (mut accepted, mut duplicates) = (Vec::new(), 0);
    for (image, digest) in pushed {
        let job = NewJob {
            registry: image.registry,
            repository: image.repository,
            digest,
            tag: image.tag,
            source: source.into(),
            callback_url: callback_url.clone(),
        };
        match state.store.enqueue(&job, now).await {
            Ok(Enqueued::New(_)) => {
                state.wake.notify_one();
                accepted.push(job.digest);
            }
            Ok(Enqueued::Duplicate(_)) => duplicates += 1,
            Err(error) => {
                state.metrics.delivery(source, Delivery::Error);
                return Err(error.into());
            }
        }
    }
    let outcome = if accepted.is_empty() {
        Delivery::Duplicate
    } else {
        Delivery::Accepted
    };
    state.metrics.delivery(source, outcome);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({
            "queued": accepted,
            "duplicates": duplicates,
            "ignored": outside,
        })),
    )
        .into_response())
}

pub(super) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn ignored(state: &App, source: &'static str, why: &str) -> Response {
    state.metrics.delivery(source, Delivery::Ignored);
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "ignored": why })),
    )
        .into_response()
}

/// How a source's sender proves it knows the secret.
#[derive(Clone, Copy, Debug)]
enum Auth {
    /// `Authorization: Bearer <secret>`, checked before the body is read.
    Bearer,
    /// The secret is the route's `{secret}` path segment, checked before the body is read.
    PathSecret,
    /// HMAC-SHA256 of the body in `X-Hub-Signature-256`: the body (bounded all the same) is
    /// read first, since the MAC covers it.
    GithubHmac,
}

/// What a delivery's body says.
struct Parsed {
    images: Vec<hooks::Pushed>,
    /// Why nothing is enqueued when `images` is empty (answered 200, counted as ignored).
    ignored: &'static str,
    /// Where to report the result (Docker Hub's `callback_url`, checked against the hook's
    /// `callback_hosts`).
    callback_url: Option<String>,
}

/// One webhook source: its route, its configuration entry, how the sender authenticates, and
/// how its body names the pushed images. Adding a source is one row of `SOURCES` (plus its
/// parser in `hooks` and its config entry).
pub(super) struct Source {
    /// The label in metrics and in the job's `source`.
    pub(super) name: &'static str,
    pub(super) route: &'static str,
    hook: fn(&config::Hooks) -> Option<&config::Hook>,
    auth: Auth,
    parse: fn(&HeaderMap, &[u8], &config::Hook) -> Result<Parsed, hooks::Error>,
}

pub(super) const SOURCES: [Source; 3] = [
    Source {
        name: "distribution",
        route: "/hooks/distribution",
        hook: |hooks| hooks.distribution.as_ref(),
        auth: Auth::Bearer,
        parse: |_, body, _| {
            // Only pushes of a manifest or index with a digest name an image.
            let (pushed, _) = hooks::registry_events(body)?;
            Ok(Parsed {
                images: pushed.into_iter().filter(|i| i.digest.is_some()).collect(),
                ignored: "no manifest push in the events",
                callback_url: None,
            })
        },
    },
    Source {
        name: "dockerhub",
        route: "/hooks/dockerhub/{secret}",
        hook: |hooks| hooks.dockerhub.as_ref(),
        auth: Auth::PathSecret,
        parse: |_, body, hook| {
            let image = hooks::dockerhub_event(body)?;
            let callback_url = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("callback_url")?.as_str().map(str::to_string))
                .filter(|url| worker::callback_allowed(url, &hook.callback_hosts));
            Ok(Parsed {
                images: vec![image],
                ignored: "no image in the payload",
                callback_url,
            })
        },
    },
    Source {
        name: "github",
        route: "/hooks/github",
        hook: |hooks| hooks.github.as_ref(),
        auth: Auth::GithubHmac,
        parse: |headers, body, _| {
            let event = header_text(headers, "x-github-event").unwrap_or_default();
            Ok(Parsed {
                images: hooks::github_event(event, body)?.into_iter().collect(),
                ignored: "not a container package push",
                callback_url: None,
            })
        },
    },
];

/// The one webhook handler: authenticate, read and parse the body, resolve tags on allowlisted
/// registries, enqueue.
pub(super) async fn deliver(
    source: &'static Source,
    state: Arc<App>,
    params: axum::extract::RawPathParams,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, AppError> {
    let name = source.name;
    let Some(hook) = (source.hook)(&state.config.hooks) else {
        return Err(AppError::NotFound);
    };
    let unauthorized = || {
        state.metrics.delivery(name, Delivery::Unauthorized);
        AppError::Unauthorized
    };
    let body = match source.auth {
        Auth::Bearer => {
            let token = hooks::bearer(header_text(&headers, "authorization"));
            if !token.is_some_and(|t| hook.secret.matches(t.as_bytes())) {
                return Err(unauthorized());
            }
            read_body(body).await?
        }
        Auth::PathSecret => {
            let secret = params
                .iter()
                .find(|(key, _)| *key == "secret")
                .map(|(_, value)| value);
            if !secret.is_some_and(|s| hook.secret.matches(s.as_bytes())) {
                return Err(unauthorized());
            }
            read_body(body).await?
        }
        Auth::GithubHmac => {
            let body = read_body(body).await?;
            let signature = header_text(&headers, "x-hub-signature-256");
            if !hooks::github_signature_valid(hook.secret.expose(), &body, signature) {
                return Err(unauthorized());
            }
            body
        }
    };
    let parsed = (source.parse)(&headers, &body, hook).map_err(|e| {
        state.metrics.delivery(name, Delivery::Invalid);
        AppError::BadRequest(error_chain(&e))
    })?;
    if parsed.images.is_empty() {
        return Ok(ignored(&state, name, parsed.ignored));
    }
    // Images outside the allowlist are answered 200 and ignored, never refused: CNCF
    // distribution retries a non-2xx delivery for ever, and every later event from that
    // registry would wait behind it.
    let mut pushed = Vec::new();
    let mut outside = Vec::new();
    for mut image in parsed.images {
        if let Some(registry) = &hook.registry {
            image.registry.clone_from(registry);
        }
        if state
            .config
            .allowed(&image.registry, &image.repository)
            .is_none()
        {
            outside.push(format!("{}/{}", image.registry, image.repository));
            continue;
        }
        let digest = resolve(&state, name, &image).await?;
        pushed.push((image, digest));
    }
    if pushed.is_empty() {
        state.metrics.delivery(name, Delivery::OutsideAllowlist);
        state.metrics.outside_allowlist(name, outside.len());
        return Ok((
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "ignored": "not in the registry allowlist",
                "images": outside,
            })),
        )
            .into_response());
    }
    state.metrics.outside_allowlist(name, outside.len());
    enqueue(&state, name, pushed, parsed.callback_url, outside).await
}

/// Resolves a tag to a digest with `HEAD`, on an allowlisted registry only.
pub(super) async fn resolve(
    state: &App,
    source: &'static str,
    image: &hooks::Pushed,
) -> Result<String, AppError> {
    if let Some(digest) = &image.digest {
        return Ok(digest.clone());
    }
    let Some(allowed) = state.config.allowed(&image.registry, &image.repository) else {
        // `deliver` checked the allowlist first.
        state.metrics.delivery(source, Delivery::Invalid);
        return Err(AppError::BadRequest(format!(
            "`{}/{}` is not in the registry allowlist",
            image.registry, image.repository
        )));
    };
    let tag = image.tag.as_deref().unwrap_or("latest");
    let digest = async {
        let client = state.client(allowed)?;
        tokio::time::timeout(
            Duration::from_secs(20),
            client.manifest_digest(&image.repository, tag),
        )
        .await
        .unwrap_or_else(|_| {
            Err(registry::Error::Timeout {
                registry: image.registry.clone(),
                what: format!("resolving `{}:{tag}`", image.repository),
                seconds: 20,
            })
        })
    }
    .await;
    digest.map_err(|error| {
        state.metrics.delivery(source, Delivery::Unresolved);
        AppError::BadGateway(format!("cannot resolve the tag: {}", error_chain(&error)))
    })
}

/// The router itself, driven without a socket: authentication, size and time limits and the
/// allowlist, for every source of the table.
#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt as _;

    const CONFIG: &str = r#"
[hooks.distribution]
secret = "dist-secret"
[hooks.dockerhub]
secret = "hub-secret"
[hooks.github]
secret = "gh-secret"
[[registry]]
host = "registry.example.test"
repositories = ["team/*"]
"#;

    fn app_in(dir: &std::path::Path) -> Router {
        let config = config::parse(&dir.join("serve.toml"), CONFIG, &|_| None).unwrap();
        let store = Store::Sqlite(store::sqlite::Sqlite::open(dir).unwrap());
        let scanner: Scanner =
            Arc::new(|_: &store::Job, _: &AllowedRegistry| Err(ScanError::Failed("unused".into())));
        app(Arc::new(App::new(config, store, scanner).unwrap()))
    }

    fn event(repository: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"events": [{
            "action": "push",
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:0123456789012345678901234567890123456789012345678901234567890123",
                "repository": repository,
            },
            "request": {"host": "registry.example.test"},
        }]}))
        .unwrap()
    }

    async fn post(app: &Router, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> StatusCode {
        let mut request = Request::post(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = app
            .clone()
            .oneshot(request.body(axum::body::Body::from(body)).unwrap())
            .await
            .unwrap();
        response.status()
    }

    #[tokio::test]
    async fn each_source_checks_its_own_secret() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_in(dir.path());
        let body = event("team/app");
        let bearer = [("authorization", "Bearer dist-secret")];
        let wrong = [("authorization", "Bearer nope")];
        assert_eq!(
            post(&app, "/hooks/distribution", &wrong, body.clone()).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            post(&app, "/hooks/distribution", &bearer, body.clone()).await,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            post(&app, "/hooks/dockerhub/nope", &[], b"{}".to_vec()).await,
            StatusCode::UNAUTHORIZED
        );
        let unsigned = [("x-github-event", "package")];
        assert_eq!(
            post(&app, "/hooks/github", &unsigned, b"{}".to_vec()).await,
            StatusCode::UNAUTHORIZED
        );
        let signature = hooks::sign(b"gh-secret", b"{}");
        let signed = [
            ("x-github-event", "ping"),
            ("x-hub-signature-256", signature.as_str()),
        ];
        assert_eq!(
            post(&app, "/hooks/github", &signed, b"{}".to_vec()).await,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn the_allowlist_and_the_size_limit_hold_for_the_generic_handler() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_in(dir.path());
        let bearer = [("authorization", "Bearer dist-secret")];
        // Outside the allowlist: 200 and ignored, so that the registry does not retry it for
        // ever in front of every later event.
        let outside = event("other/app");
        assert_eq!(
            post(&app, "/hooks/distribution", &bearer, outside).await,
            StatusCode::OK
        );
        let huge = vec![b' '; MAX_BODY + 1];
        assert_eq!(
            post(&app, "/hooks/distribution", &bearer, huge).await,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            post(&app, "/hooks/distribution", &bearer, b"not json".to_vec()).await,
            StatusCode::BAD_REQUEST
        );
    }

    /// A client that sends the start of a body and then nothing is answered 408 once
    /// `BODY_TIMEOUT` passes (on tokio's paused clock, so the test does not wait for it).
    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_gets_408() {
        use futures_util::StreamExt as _;
        let dir = tempfile::tempdir().unwrap();
        let app = app_in(dir.path());
        let stalled =
            futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from("{")) })
                .chain(futures_util::stream::pending());
        let request = Request::post("/hooks/distribution")
            .header("authorization", "Bearer dist-secret")
            .body(axum::body::Body::from_stream(stalled))
            .unwrap();
        let started = tokio::time::Instant::now();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(started.elapsed(), BODY_TIMEOUT);
    }
}
