//! Webhook deliveries: one handler per source (CNCF distribution, Docker Hub, GitHub) that
//! authenticates the sender, parses the body with `hooks`, checks the allowlist, resolves a tag
//! to a digest where the payload has none, and enqueues. It never scans.

use super::*;

/// Checks pushed images against the allowlist (all or nothing), then enqueues them.
pub(super) async fn enqueue(
    state: &App,
    source: &'static str,
    pushed: Vec<(hooks::Pushed, String)>,
    callback_url: Option<String>,
) -> Result<Response, AppError> {
    for (image, _) in &pushed {
        if state
            .config
            .allowed(&image.registry, &image.repository)
            .is_none()
        {
            state.metrics.delivery(source, Delivery::Forbidden);
            return Err(AppError::Forbidden(format!(
                "`{}/{}` is not in the registry allowlist",
                image.registry, image.repository
            )));
        }
    }
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
        axum::Json(serde_json::json!({ "queued": accepted, "duplicates": duplicates })),
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

pub(super) async fn distribution_hook(
    State(state): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, AppError> {
    const SOURCE: &str = "distribution";
    let Some(hook) = &state.config.hooks.distribution else {
        return Err(AppError::NotFound);
    };
    let token = hooks::bearer(header_text(&headers, "authorization"));
    if !token.is_some_and(|t| hook.secret.matches(t.as_bytes())) {
        state.metrics.delivery(SOURCE, Delivery::Unauthorized);
        return Err(AppError::Unauthorized);
    }
    // The secret is checked first: a stranger's body is never read.
    let body = read_body(body).await?;
    let (pushed, _) = hooks::registry_events(&body).map_err(|e| {
        state.metrics.delivery(SOURCE, Delivery::Invalid);
        AppError::BadRequest(error_chain(&e))
    })?;
    if pushed.is_empty() {
        return Ok(ignored(&state, SOURCE, "no manifest push in the events"));
    }
    let pushed = pushed
        .into_iter()
        .filter_map(|mut image| {
            if let Some(registry) = &hook.registry {
                image.registry.clone_from(registry);
            }
            let digest = image.digest.clone()?;
            Some((image, digest))
        })
        .collect();
    enqueue(&state, SOURCE, pushed, None).await
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
        state.metrics.delivery(source, Delivery::Forbidden);
        return Err(AppError::Forbidden(format!(
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

pub(super) async fn dockerhub_hook(
    State(state): State<Arc<App>>,
    Path(secret): Path<String>,
    body: axum::body::Body,
) -> Result<Response, AppError> {
    const SOURCE: &str = "dockerhub";
    let Some(hook) = &state.config.hooks.dockerhub else {
        return Err(AppError::NotFound);
    };
    if !hook.secret.matches(secret.as_bytes()) {
        state.metrics.delivery(SOURCE, Delivery::Unauthorized);
        return Err(AppError::Unauthorized);
    }
    let body = read_body(body).await?;
    let mut image = hooks::dockerhub_event(&body).map_err(|e| {
        state.metrics.delivery(SOURCE, Delivery::Invalid);
        AppError::BadRequest(error_chain(&e))
    })?;
    if let Some(registry) = &hook.registry {
        image.registry.clone_from(registry);
    }
    let callback = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("callback_url")?.as_str().map(str::to_string))
        .filter(|url| worker::callback_allowed(url, &hook.callback_hosts));
    let digest = resolve(&state, SOURCE, &image).await?;
    enqueue(&state, SOURCE, vec![(image, digest)], callback).await
}

pub(super) async fn github_hook(
    State(state): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, AppError> {
    const SOURCE: &str = "github";
    let Some(hook) = &state.config.hooks.github else {
        return Err(AppError::NotFound);
    };
    // The HMAC covers the body, so this one is read before the check (bounded all the same).
    let body = read_body(body).await?;
    let signature = header_text(&headers, "x-hub-signature-256");
    if !hooks::github_signature_valid(hook.secret.expose(), &body, signature) {
        state.metrics.delivery(SOURCE, Delivery::Unauthorized);
        return Err(AppError::Unauthorized);
    }
    let event = header_text(&headers, "x-github-event").unwrap_or_default();
    let image = hooks::github_event(event, &body).map_err(|e| {
        state.metrics.delivery(SOURCE, Delivery::Invalid);
        AppError::BadRequest(error_chain(&e))
    })?;
    let Some(mut image) = image else {
        return Ok(ignored(&state, SOURCE, "not a container package push"));
    };
    if let Some(registry) = &hook.registry {
        image.registry.clone_from(registry);
    }
    let digest = resolve(&state, SOURCE, &image).await?;
    enqueue(&state, SOURCE, vec![(image, digest)], None).await
}
