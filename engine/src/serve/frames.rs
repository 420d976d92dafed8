//! Frames a request names, and the [`FrameSource`] that serves them to its
//! agents. A frame is a path under the server's frames root (resolved,
//! links followed, and refused if it leads outside the root) or an inline
//! base64 image (PNG, JPEG or WebP, bounded in size).
//!
//! Checking an inline image reads only its length, its alphabet and its
//! first bytes (the image format): it is decoded once per request, after
//! the request is admitted, by [`RequestFrames::new`], which writes it to a
//! temporary directory that lives as long as the request. A refused request
//! never pays for decoding, and the candidates of a `/v1/filter` request
//! share one decoded copy of every frame.

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
    /// An inline image, still base64-encoded (checked: its size, its
    /// alphabet, and that it starts as a PNG, JPEG or WebP does).
    Inline {
        /// The base64 text (a `data:` URL's prefix removed).
        encoded: String,
        /// The field it came from, for an error found when decoding.
        pointer: String,
    },
}

/// Whether `c` is in the standard base64 alphabet (padding aside).
fn base64_symbol(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

impl FrameRef {
    /// Checks one entry of a `frames` list: `"rel/path.png"`,
    /// `{"path": "rel/path.png"}` or `{"base64": "…"}` (a `data:` URL too).
    /// Takes the entry's text (an inline image is moved, not copied).
    pub fn parse(value: &mut Value, pointer: &str, rules: &RequestRules) -> Result<Self, FieldError> {
        match value {
            Value::String(path) => Self::file(path, pointer, rules),
            Value::Object(fields) => match (fields.contains_key("path"), fields.get_mut("base64")) {
                (true, None) => match fields.get("path") {
                    Some(Value::String(path)) => Self::file(path, &format!("{pointer}/path"), rules),
                    _ => Err(field_error(format!("{pointer}/path"), "must be a string")),
                },
                (false, Some(Value::String(data))) => {
                    Self::inline(std::mem::take(data), &format!("{pointer}/base64"), rules)
                }
                (false, Some(_)) => Err(field_error(format!("{pointer}/base64"), "must be a string")),
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

    fn inline(data: String, pointer: &str, rules: &RequestRules) -> Result<Self, FieldError> {
        let mut encoded = match data.split_once(";base64,") {
            Some((scheme, rest)) if scheme.starts_with("data:") => rest.to_string(),
            _ => data,
        };
        let trimmed = encoded.trim();
        if trimmed.len() != encoded.len() {
            encoded = trimmed.to_string();
        }
        let limit = rules.limits.max_frame_bytes;
        let padding = encoded.bytes().rev().take_while(|&c| c == b'=').count();
        let body = &encoded.as_bytes()[..encoded.len() - padding];
        if encoded.len() % 4 != 0 || padding > 2 || !body.iter().all(|&c| base64_symbol(c)) {
            return Err(field_error(pointer, "not base64 (standard alphabet, padded)"));
        }
        if encoded.len() / 4 * 3 - padding > limit {
            return Err(field_error(pointer, format!("an image over {limit} bytes")));
        }
        // The format from the first 12 bytes (16 symbols); the rest is decoded after admission.
        let head = base64::engine::general_purpose::STANDARD
            .decode(&encoded[..encoded.len().min(16)])
            .map_err(|e| field_error(pointer, format!("not base64: {e}")))?;
        match image::guess_format(&head) {
            Ok(image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::WebP) => {
                Ok(Self::Inline { encoded, pointer: pointer.to_string() })
            }
            _ => Err(field_error(pointer, "not a PNG, JPEG or WebP image")),
        }
    }
}

/// Why a request's frames could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum FramesError {
    /// An inline image that passed the check does not decode.
    #[error("{0}")]
    Field(FieldError),
    /// The temporary directory could not be written.
    #[error("cannot store the request's frames: {0}")]
    Io(#[from] std::io::Error),
}

/// The frames of one request, served to its agents by video id and index.
pub struct RequestFrames {
    files: HashMap<String, Vec<PathBuf>>,
    /// Holds the inline images; removed with the request.
    _scratch: Option<tempfile::TempDir>,
}

impl RequestFrames {
    /// Decodes the inline frames of `frames` into a temporary directory
    /// (one file per frame, whatever number of candidates name it).
    pub fn new(frames: HashMap<String, Vec<FrameRef>>) -> Result<Self, FramesError> {
        let needs_scratch = frames.values().flatten().any(|f| matches!(f, FrameRef::Inline { .. }));
        let scratch = needs_scratch.then(|| tempfile::Builder::new().prefix("enf-serve-").tempdir()).transpose()?;
        let mut files = HashMap::new();
        for (n, (video_id, refs)) in frames.into_iter().enumerate() {
            let mut paths = Vec::with_capacity(refs.len());
            for (i, frame) in refs.into_iter().enumerate() {
                match (frame, &scratch) {
                    (FrameRef::File(path), _) => paths.push(path),
                    (FrameRef::Inline { encoded, pointer }, Some(dir)) => {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(&encoded)
                            .map_err(|e| FramesError::Field(field_error(&pointer, format!("not base64: {e}"))))?;
                        drop(encoded);
                        let format = image::guess_format(&bytes).ok();
                        let extension = format.and_then(|f| f.extensions_str().first().copied()).unwrap_or("img");
                        let path = dir.path().join(format!("{n}-{i}.{extension}"));
                        std::fs::write(&path, bytes)?;
                        paths.push(path);
                    }
                    (FrameRef::Inline { .. }, None) => unreachable!("a scratch directory exists for inline frames"),
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
        assert!(matches!(FrameRef::parse(&mut json!("v1/00.png"), "/f", &rules), Ok(FrameRef::File(_))));
        assert!(matches!(FrameRef::parse(&mut json!({"path": "v1/00.png"}), "/f", &rules), Ok(FrameRef::File(_))));
        for bad in ["../secret.png", "/etc/passwd", "v1/missing.png", "v1"] {
            assert!(FrameRef::parse(&mut json!(bad), "/f", &rules).is_err(), "{bad} must be refused");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outer.path().join("secret.png"), root.join("v1/link.png")).unwrap();
            let error = FrameRef::parse(&mut json!("v1/link.png"), "/f", &rules).unwrap_err();
            assert!(error.message.contains("outside"), "{error}");
        }
        let no_root = super::super::request::RequestRules::default();
        assert!(FrameRef::parse(&mut json!("v1/00.png"), "/f", &no_root).is_err(), "no root: no files");
    }

    #[test]
    fn inline_images_are_checked_without_decoding_and_decoded_once_into_a_scratch_directory() {
        let rules = rules(None);
        let encoded = base64::engine::general_purpose::STANDARD.encode(png());
        let frame = FrameRef::parse(&mut json!({"base64": encoded}), "/f", &rules).unwrap();
        let data_url = format!("data:image/png;base64,{encoded}");
        assert_eq!(FrameRef::parse(&mut json!({"base64": data_url}), "/f", &rules).unwrap(), frame);
        let not_image = base64::engine::general_purpose::STANDARD.encode(b"#!/bin/sh\nrm -rf /");
        assert_eq!(
            FrameRef::parse(&mut json!({"base64": not_image}), "/candidate/frames/0", &rules).unwrap_err().pointer,
            "/candidate/frames/0/base64"
        );
        for bad in ["***", "abc", "ab=c", "a==="] {
            assert!(FrameRef::parse(&mut json!({"base64": bad}), "/f", &rules).is_err(), "{bad} must be refused");
        }
        let tight = RequestRules {
            limits: super::super::request::Limits { max_frame_bytes: 10, ..Default::default() },
            ..rules.clone()
        };
        let error = FrameRef::parse(&mut json!({"base64": encoded}), "/f", &tight).unwrap_err();
        assert!(error.message.contains("over 10"), "{error}");

        // Decoding happens when the request's frames are made ready.
        let source = RequestFrames::new(HashMap::from([("v9".to_string(), vec![frame])])).unwrap();
        let path = source.frame("v9", 0).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), png());
        assert!(source.frame("v9", 1).is_err() && source.frame("v8", 0).is_err());
        drop(source);
        assert!(!path.exists(), "inline frames go with the request");

        // Text that passes the check but does not decode (its last symbol
        // carries bits past the data) is caught then, naming the field.
        let mut bytes = png();
        while bytes.len() % 3 != 1 {
            bytes.push(0);
        }
        let mut broken = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let last = broken.len() - 3;
        broken.replace_range(last..last + 1, "/");
        let frame = FrameRef::parse(&mut json!({"base64": broken}), "/history/2/frames/0", &rules).unwrap();
        let error = match RequestFrames::new(HashMap::from([("v1".to_string(), vec![frame])])) {
            Err(FramesError::Field(e)) => e,
            other => panic!("a broken image must be refused: {:?}", other.map(|_| ())),
        };
        assert_eq!(error.pointer, "/history/2/frames/0/base64");
    }
}
