//! Turning a plan into bytes: the reproducible layer (sorted entries, mtime 0, uid/gid 0,
//! gzip without timestamp), the edited config (raw JSON: unknown fields survive) and the edited
//! manifest. Also recognises and strips a layer an earlier `ocicert inject` added, so injecting
//! again replaces it instead of stacking.

use super::plan::{self, Ca, Entry, Plan};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;

/// The `comment` of the history entry ocicert adds.
pub const HISTORY_COMMENT: &str = "ocicert: trust injection";
/// The config label listing the injected CA fingerprints.
pub const LABEL_CAS: &str = crate::truststore::INJECTED_CAS_LABEL;
const LABEL_BASE_NAME: &str = "org.opencontainers.image.base.name";
const LABEL_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// A built layer.
#[derive(Clone, Debug)]
pub struct Layer {
    pub compressed: Vec<u8>,
    pub digest: String,
    pub diff_id: String,
    pub media_type: String,
}

/// Builds the layer tar (gzip) from the plan's entries.
pub fn layer(
    entries: &BTreeMap<String, Entry>,
    docker_media_types: bool,
) -> std::io::Result<Layer> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, entry) in entries {
        let relative = path.trim_start_matches('/');
        let mut header = tar::Header::new_ustar();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::Directory => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, format!("{relative}/"), &[][..])?;
            }
            Entry::File(bytes) | Entry::Executable(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if matches!(entry, Entry::Executable(_)) {
                    0o755
                } else {
                    0o644
                });
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, relative, &bytes[..])?;
            }
            Entry::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, relative, target)?;
            }
        }
    }
    let tar = builder.into_inner()?;
    let mut gzip = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gzip.write_all(&tar)?;
    let compressed = gzip.finish()?;
    Ok(Layer {
        digest: crate::image::digest::sha256(&compressed),
        diff_id: crate::image::digest::sha256(&tar),
        compressed,
        media_type: if docker_media_types {
            "application/vnd.docker.image.rootfs.diff.tar.gzip".into()
        } else {
            "application/vnd.oci.image.layer.v1.tar+gzip".into()
        },
    })
}

/// Where the image came from, recorded in labels and annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    pub name: String,
    pub digest: String,
}

/// If the top layer is ocicert's, the config and manifest without it, and the base recorded
/// when it was added.
pub fn strip_previous(config: &Value, manifest: &Value) -> Option<(Value, Value, Option<Base>)> {
    let labels = config.pointer("/config/Labels")?.as_object()?;
    labels.get(LABEL_CAS)?;
    let history = config.get("history")?.as_array()?;
    let last = history.iter().rposition(|h| {
        !h.get("empty_layer")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    })?;
    if history[last].get("comment").and_then(Value::as_str) != Some(HISTORY_COMMENT) {
        return None;
    }
    let base = match (
        labels.get(LABEL_BASE_NAME).and_then(Value::as_str),
        labels.get(LABEL_BASE_DIGEST).and_then(Value::as_str),
    ) {
        (Some(name), Some(digest)) => Some(Base {
            name: name.into(),
            digest: digest.into(),
        }),
        _ => None,
    };
    let mut config = config.clone();
    let mut manifest = manifest.clone();
    manifest.get_mut("layers")?.as_array_mut()?.pop()?;
    config
        .pointer_mut("/rootfs/diff_ids")?
        .as_array_mut()?
        .pop()?;
    config.get_mut("history")?.as_array_mut()?.remove(last);
    if let Some(labels) = config
        .pointer_mut("/config/Labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(LABEL_CAS);
    }
    Some((config, manifest, base))
}

/// The image's `config.Env`, as strings.
pub fn config_env(config: &Value) -> Vec<String> {
    config
        .pointer("/config/Env")
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The config with the new layer, env, labels and history entry.
pub fn edit_config(config: &Value, layer: &Layer, plan: &Plan, cas: &[Ca], base: &Base) -> Value {
    let mut config = config.clone();
    if !config.get("config").is_some_and(Value::is_object) {
        config["config"] = json!({});
    }
    let mut env = config_env(&config);
    let inner = &mut config["config"];
    plan::apply_env(&mut env, &plan.env);
    if !env.is_empty() {
        inner["Env"] = json!(env);
    }
    if !inner.get("Labels").is_some_and(Value::is_object) {
        inner["Labels"] = json!({});
    }
    let fingerprints: Vec<&str> = cas.iter().map(|ca| ca.info.fingerprint.as_str()).collect();
    inner["Labels"][LABEL_CAS] = json!(fingerprints.join(","));
    inner["Labels"][LABEL_BASE_NAME] = json!(base.name);
    inner["Labels"][LABEL_BASE_DIGEST] = json!(base.digest);
    if !config
        .pointer("/rootfs/diff_ids")
        .is_some_and(Value::is_array)
    {
        config["rootfs"] = json!({"type": "layers", "diff_ids": []});
    }
    if let Some(ids) = config
        .pointer_mut("/rootfs/diff_ids")
        .and_then(Value::as_array_mut)
    {
        ids.push(json!(layer.diff_id));
    }
    let subjects: Vec<String> = cas.iter().map(|ca| ca.name.clone()).collect();
    let mut entry = json!({"created_by": format!("ocicert inject --ca {}", subjects.join(" --ca ")), "comment": HISTORY_COMMENT});
    if let Some(created) = config.get("created").cloned() {
        entry["created"] = created;
    }
    if !config.get("history").is_some_and(Value::is_array) {
        config["history"] = json!([]);
    }
    if let Some(history) = config.get_mut("history").and_then(Value::as_array_mut) {
        history.push(entry);
    }
    config
}

/// The manifest with the new config and layer (and base annotations for OCI manifests).
pub fn edit_manifest(manifest: &Value, config_bytes: &[u8], layer: &Layer, base: &Base) -> Value {
    let mut manifest = manifest.clone();
    let config_media = manifest
        .pointer("/config/mediaType")
        .cloned()
        .unwrap_or_else(|| json!("application/vnd.oci.image.config.v1+json"));
    manifest["config"] = json!({"mediaType": config_media, "digest": crate::image::digest::sha256(config_bytes), "size": config_bytes.len()});
    if let Some(layers) = manifest.get_mut("layers").and_then(Value::as_array_mut) {
        layers.push(json!({"mediaType": layer.media_type, "digest": layer.digest, "size": layer.compressed.len()}));
    }
    let is_oci = manifest
        .get("mediaType")
        .and_then(Value::as_str)
        .is_none_or(|m| m == crate::image::manifest::OCI_MANIFEST);
    if is_oci {
        if !manifest.get("annotations").is_some_and(Value::is_object) {
            manifest["annotations"] = json!({});
        }
        manifest["annotations"][LABEL_BASE_NAME] = json!(base.name);
        manifest["annotations"][LABEL_BASE_DIGEST] = json!(base.digest);
    }
    manifest
}
