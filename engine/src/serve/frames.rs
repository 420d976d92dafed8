//! Frames a request names, and the [`FrameSource`] that serves them to its
//! agents. A frame is a path under the server's frames root (resolved,
//! links followed, and refused if it leads outside the root) or an inline
//! base64 image (PNG, JPEG or WebP, bounded in size), written to a
//! temporary directory that lives as long as the request.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use super::request::{FieldError, RequestRules, field_error};
use crate::run::FrameSource;

/// One frame of a request, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameRef {
    /// An image file under the frames root (canonical path).
    File(PathBuf),
    /// An inline image's bytes.
    Inline(Vec<u8>),
}

impl FrameRef {
    /// Checks one entry of a `frames` list: `"rel/path.png"`,
    /// `{"path": "rel/path.png"}` or `{"base64": "…"}` (a `data:` URL too).
    pub fn parse(value: &Value, pointer: &str, rules: &RequestRules) -> Result<Self, FieldError> {
        match value {
            Value::String(path) => Self::file(path, pointer, rules),
            Value::Object(fields) => match (fields.get("path"), fields.get("base64")) {
                (Some(Value::String(path)), None) => Self::file(path, &format!("{pointer}/path"), rules),
                (None, Some(Value::String(data))) => Self::inline(data, &format!("{pointer}/base64"), rules),
                _ => Err(field_error(pointer, "a frame is {\"path\": …} or {\"base64\": …}")),
            },
            _ => Err(field_error(pointer, "a frame is a path, {\"path\": …} or {\"base64\": …}")),
        }
    }

    fn file(path: &str, pointer: &str, rules: &RequestRules) -> Result<Self, FieldError> {
        let Some(root) = &rules.frames_root else {
            return Err(field_error(
                pointer,
                "this server reads no frame files (start it with --frames-root DIR), send the image inline",
            ));
        };
        let relative = Path::new(path);
        if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(field_error(pointer, "must be a relative path without `..`"));
        }
        let resolved = root.join(relative).canonicalize().map_err(|_| field_error(pointer, "no such frame file"))?;
        if !resolved.starts_with(root) {
            return Err(field_error(pointer, "leads outside the frames root"));
        }
        if !resolved.is_file() {
            return Err(field_error(pointer, "not a file"));
        }
        Ok(Self::File(resolved))
    }

    fn inline(data: &str, pointer: &str, rules: &RequestRules) -> Result<Self, FieldError> {
        let encoded = match data.split_once(";base64,") {
            Some((scheme, rest)) if scheme.starts_with("data:") => rest,
            _ => data,
        };
        let limit = rules.limits.max_frame_bytes;
        if encoded.len() / 4 * 3 > limit + 3 {
            return Err(field_error(pointer, format!("an image over {limit} bytes")));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| field_error(pointer, format!("not base64: {e}")))?;
        if bytes.len() > limit {
            return Err(field_error(pointer, format!("an image over {limit} bytes")));
        }
        match image::guess_format(&bytes) {
            Ok(image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::WebP) => {
                Ok(Self::Inline(bytes))
            }
            _ => Err(field_error(pointer, "not a PNG, JPEG or WebP image")),
        }
    }
}

/// The frames of one request, served to its agents by video id and index.
pub struct RequestFrames {
    files: HashMap<String, Vec<PathBuf>>,
    /// Holds the inline images; removed with the request.
    _scratch: Option<tempfile::TempDir>,
}

impl RequestFrames {
    /// Writes the inline frames of `frames` to a temporary directory.
    pub fn new(frames: HashMap<String, Vec<FrameRef>>) -> std::io::Result<Self> {
        let needs_scratch = frames.values().flatten().any(|f| matches!(f, FrameRef::Inline(_)));
        let scratch = needs_scratch.then(|| tempfile::Builder::new().prefix("enf-serve-").tempdir()).transpose()?;
        let mut files = HashMap::new();
        for (n, (video_id, refs)) in frames.into_iter().enumerate() {
            let mut paths = Vec::with_capacity(refs.len());
            for (i, frame) in refs.into_iter().enumerate() {
                match (frame, &scratch) {
                    (FrameRef::File(path), _) => paths.push(path),
                    (FrameRef::Inline(bytes), Some(dir)) => {
                        let format = image::guess_format(&bytes).ok();
                        let extension = format.and_then(|f| f.extensions_str().first().copied()).unwrap_or("img");
                        let path = dir.path().join(format!("{n}-{i}.{extension}"));
                        std::fs::write(&path, bytes)?;
                        paths.push(path);
                    }
                    (FrameRef::Inline(_), None) => unreachable!("a scratch directory exists for inline frames"),
                }
            }
            files.insert(video_id, paths);
        }
        Ok(Self { files, _scratch: scratch })
    }
}

impl FrameSource for RequestFrames {
    fn frame(&self, video_id: &str, index: u32) -> Result<PathBuf, String> {
        let frames = self.files.get(video_id).ok_or_else(|| format!("video `{video_id}` is not in the request"))?;
        frames.get(index as usize).cloned().ok_or_else(|| {
            format!("video `{video_id}` has {} frame(s) in the request; frame {index} does not exist", frames.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn png() -> Vec<u8> {
        let mut bytes = Vec::new();
        image::RgbImage::new(2, 2).write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
        bytes
    }

    fn rules(root: Option<&Path>) -> RequestRules {
        RequestRules { frames_root: root.map(|r| r.canonicalize().unwrap()), ..RequestRules::default() }
    }

    #[test]
    fn paths_stay_under_the_frames_root() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir_all(root.join("v1")).unwrap();
        std::fs::write(root.join("v1/00.png"), png()).unwrap();
        std::fs::write(outer.path().join("secret.png"), png()).unwrap();
        let rules = rules(Some(&root));
        assert!(matches!(FrameRef::parse(&json!("v1/00.png"), "/f", &rules), Ok(FrameRef::File(_))));
        assert!(matches!(FrameRef::parse(&json!({"path": "v1/00.png"}), "/f", &rules), Ok(FrameRef::File(_))));
        for bad in ["../secret.png", "/etc/passwd", "v1/missing.png", "v1"] {
            assert!(FrameRef::parse(&json!(bad), "/f", &rules).is_err(), "{bad} must be refused");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outer.path().join("secret.png"), root.join("v1/link.png")).unwrap();
            let error = FrameRef::parse(&json!("v1/link.png"), "/f", &rules).unwrap_err();
            assert!(error.message.contains("outside"), "{error}");
        }
        let no_root = super::super::request::RequestRules::default();
        assert!(FrameRef::parse(&json!("v1/00.png"), "/f", &no_root).is_err(), "no root: no files");
    }

    #[test]
    fn inline_images_are_checked_and_served_from_a_scratch_directory() {
        let rules = rules(None);
        let encoded = base64::engine::general_purpose::STANDARD.encode(png());
        let frame = FrameRef::parse(&json!({"base64": encoded}), "/f", &rules).unwrap();
        let data_url = format!("data:image/png;base64,{encoded}");
        assert_eq!(FrameRef::parse(&json!({"base64": data_url}), "/f", &rules).unwrap(), frame);
        let not_image = base64::engine::general_purpose::STANDARD.encode(b"#!/bin/sh\nrm -rf /");
        assert_eq!(
            FrameRef::parse(&json!({"base64": not_image}), "/candidate/frames/0", &rules).unwrap_err().pointer,
            "/candidate/frames/0/base64"
        );
        assert!(FrameRef::parse(&json!({"base64": "***"}), "/f", &rules).is_err());
        let tight = RequestRules {
            limits: super::super::request::Limits { max_frame_bytes: 10, ..Default::default() },
            ..rules
        };
        assert!(FrameRef::parse(&json!({"base64": encoded}), "/f", &tight).unwrap_err().message.contains("over 10"));

        let source = RequestFrames::new(HashMap::from([("v9".to_string(), vec![frame])])).unwrap();
        let path = source.frame("v9", 0).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), png());
        assert!(source.frame("v9", 1).is_err() && source.frame("v8", 0).is_err());
        drop(source);
        assert!(!path.exists(), "inline frames go with the request");
    }
}
