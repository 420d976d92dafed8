//! Video files: sampling the 16 uniformly spaced frames the paper's Video
//! agent sees from a video's `video_path`, on the host, once.
//!
//! Containers: MP4 (ISO BMFF, read with `re_mp4`) carrying H.264 (decoded with
//! OpenH264, built from source by the `openh264` crate — Constrained
//! Baseline, Main and High progressive profiles). Frames are written as JPEG
//! files into a cache keyed by the video file's SHA-256
//! (`CACHE/frames/HASH/NN.jpg`), so a video is decoded once however many runs,
//! items or data sets use it, and everything downstream (inference requests,
//! data URLs for remote endpoints, the inference cache) keeps working on frame
//! files exactly as for data sets that list `frames` themselves.

use std::path::{Path, PathBuf};

use image::RgbImage;
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use re_mp4::{Mp4, StsdBoxContent};
use sha2::{Digest, Sha256};

/// Frames sampled from each video file (paper §Experiments: 16 uniform frames).
pub const FRAMES_PER_VIDEO: usize = 16;

/// Longest side of a stored frame, in pixels; larger frames are scaled down
/// (the vision encoder's token count grows with the pixel count).
pub const MAX_FRAME_SIDE: u32 = 448;

/// Why frames could not be taken from a video file.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The video file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an MP4 container the reader understands.
    #[error("{path} is not a readable MP4 file: {reason}")]
    Container {
        /// The video file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },
    /// The container holds no H.264 video track.
    #[error(
        "{path} has no H.264 video track (found: {found}); re-encode it as H.264 MP4, or list its frames as images"
    )]
    NoH264Track {
        /// The video file.
        path: PathBuf,
        /// The tracks' codecs.
        found: String,
    },
    /// The H.264 stream could not be decoded.
    #[error("cannot decode {path}: {reason}")]
    Decode {
        /// The video file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// A frame could not be written to the cache.
    #[error("cannot write frame {path}: {reason}")]
    Write {
        /// The frame file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What the container says about a video's H.264 track.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Frames (samples) in the track.
    pub frames: usize,
    /// Length in seconds.
    pub duration_s: f64,
}

/// The H.264 track of an MP4 file and what is needed to decode it.
struct H264Track {
    info: VideoInfo,
    /// SPS and PPS in Annex B form, sent before every sync sample.
    parameter_sets: Vec<u8>,
    /// Bytes of the NAL length prefix in samples.
    length_size: usize,
    /// Byte range of every sample in the file, in decode order.
    samples: Vec<std::ops::Range<usize>>,
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

fn find_h264_track(path: &Path, bytes: &[u8]) -> Result<H264Track, VideoError> {
    let mp4 = Mp4::read_bytes(bytes).map_err(|e| VideoError::Container { path: path.into(), reason: e.to_string() })?;
    let mut found = Vec::new();
    for track in mp4.tracks().values() {
        let StsdBoxContent::Avc1(avc1) = &track.trak(&mp4).mdia.minf.stbl.stsd.contents else {
            found.push(track.codec_string(&mp4).unwrap_or_else(|| "unknown".into()));
            continue;
        };
        let config = &avc1.avcc.contents;
        let mut parameter_sets = Vec::new();
        for nal in config.sequence_parameter_sets.iter().chain(&config.picture_parameter_sets) {
            parameter_sets.extend_from_slice(&START_CODE);
            parameter_sets.extend_from_slice(&nal.bytes);
        }
        let samples: Vec<_> = track.samples.iter().map(|s| s.byte_range()).collect();
        if let Some(bad) = samples.iter().find(|r| r.end > bytes.len()) {
            return Err(VideoError::Container {
                path: path.into(),
                reason: format!("a sample ends at byte {} past the end of the file ({} bytes)", bad.end, bytes.len()),
            });
        }
        let timescale = track.timescale.max(1) as f64;
        return Ok(H264Track {
            info: VideoInfo {
                width: track.width,
                height: track.height,
                frames: samples.len(),
                duration_s: track.duration as f64 / timescale,
            },
            parameter_sets,
            length_size: usize::from(config.length_size_minus_one & 3) + 1,
            samples,
        });
    }
    Err(VideoError::NoH264Track {
        path: path.into(),
        found: if found.is_empty() { "none".into() } else { found.join(", ") },
    })
}

fn read(path: &Path) -> Result<Vec<u8>, VideoError> {
    std::fs::read(path).map_err(|source| VideoError::Read { path: path.into(), source })
}

/// Reads a video file's container: its H.264 track's size, frame count and length.
pub fn probe(path: &Path) -> Result<VideoInfo, VideoError> {
    Ok(find_h264_track(path, &read(path)?)?.info)
}

/// Converts one length-prefixed (AVCC) sample to Annex B start-code form.
fn annex_b(sample: &[u8], length_size: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let mut rest = sample;
    while !rest.is_empty() {
        if rest.len() < length_size {
            return Err("truncated NAL length prefix".into());
        }
        let len = rest[..length_size].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[length_size..];
        if len > rest.len() {
            return Err(format!("NAL unit of {len} bytes overruns its sample ({} bytes left)", rest.len()));
        }
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(&rest[..len]);
        rest = &rest[len..];
    }
    Ok(())
}

/// The display-order indices of `count` frames spread evenly over `total`
/// (the middle of each of `count` equal segments).
pub fn uniform_indices(total: usize, count: usize) -> Vec<usize> {
    let count = count.min(total);
    (0..count).map(|i| (2 * i + 1) * total / (2 * count)).collect()
}

fn to_image(yuv: &openh264::decoder::DecodedYUV<'_>) -> RgbImage {
    let (width, height) = yuv.dimensions();
    let mut rgb = vec![0; width * height * 3];
    yuv.write_rgb8(&mut rgb);
    // `write_rgb8` fills exactly width × height × 3 bytes, so this cannot fail.
    let image = RgbImage::from_raw(width as u32, height as u32, rgb).unwrap_or_default();
    let longest = image.width().max(image.height());
    if longest <= MAX_FRAME_SIDE {
        return image;
    }
    let scale = f64::from(MAX_FRAME_SIDE) / f64::from(longest);
    let (w, h) =
        ((f64::from(image.width()) * scale).round() as u32, (f64::from(image.height()) * scale).round() as u32);
    image::imageops::resize(&image, w.max(1), h.max(1), image::imageops::FilterType::Triangle)
}

/// Keeps the decoded pictures whose display index is wanted.
struct Picker<'a> {
    wanted: &'a [usize],
    shown: usize,
    frames: Vec<RgbImage>,
}

impl Picker<'_> {
    fn offer(&mut self, yuv: &openh264::decoder::DecodedYUV<'_>) {
        if self.wanted.binary_search(&self.shown).is_ok() {
            self.frames.push(to_image(yuv));
        }
        self.shown += 1;
    }
}

/// Decodes a video file and returns up to `count` frames spaced uniformly
/// over it, in display order (fewer only if the video has fewer frames).
pub fn sample_frames(path: &Path, count: usize) -> Result<Vec<RgbImage>, VideoError> {
    decode_frames(path, &read(path)?, count)
}

/// [`sample_frames`] on the file's bytes, already read. A panic inside the
/// decoder (OpenH264 or its bindings) becomes this video's error.
fn decode_frames(path: &Path, bytes: &[u8], count: usize) -> Result<Vec<RgbImage>, VideoError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_uniform(path, bytes, count))).unwrap_or_else(
        |panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(VideoError::Decode { path: path.into(), reason: format!("the H.264 decoder panicked: {message}") })
        },
    )
}

fn decode_uniform(path: &Path, bytes: &[u8], count: usize) -> Result<Vec<RgbImage>, VideoError> {
    let track = find_h264_track(path, bytes)?;
    let decode_error = |reason: String| VideoError::Decode { path: path.into(), reason };
    let wanted = uniform_indices(track.samples.len(), count);
    let Some(&last_wanted) = wanted.last() else {
        return Err(decode_error("the video track has no frames".into()));
    };
    let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
    let mut decoder = Decoder::with_api_config(openh264::OpenH264API::from_source(), config)
        .map_err(|e| decode_error(format!("cannot start the H.264 decoder: {e}")))?;
    let mut picker = Picker { wanted: &wanted, shown: 0, frames: Vec::with_capacity(wanted.len()) };
    let mut packet = Vec::new();
    let mut errors = 0usize;
    for (index, range) in track.samples.iter().enumerate() {
        packet.clear();
        if index == 0 {
            packet.extend_from_slice(&track.parameter_sets);
        }
        annex_b(&bytes[range.clone()], track.length_size, &mut packet)
            .map_err(|reason| decode_error(format!("frame {index}: {reason}")))?;
        match decoder.decode(&packet) {
            Ok(Some(yuv)) => picker.offer(&yuv),
            Ok(None) => {}
            // OpenH264 reports recoverable stream errors per frame and conceals them.
            Err(e) => {
                errors += 1;
                tracing::debug!(video = %path.display(), frame = index, "H.264 decode error: {e}");
            }
        }
        if picker.shown > last_wanted {
            break;
        }
    }
    if picker.shown <= last_wanted {
        let remaining = decoder.flush_remaining().map_err(|e| decode_error(format!("flushing the decoder: {e}")))?;
        for yuv in &remaining {
            picker.offer(yuv);
        }
    }
    let frames = picker.frames;
    if frames.is_empty() {
        return Err(decode_error(format!(
            "no frame could be decoded from {} sample(s) ({errors} decoder error(s)); the H.264 profile may be unsupported",
            track.samples.len()
        )));
    }
    if errors > 0 {
        tracing::warn!(video = %path.display(), errors, "some H.264 frames had decoding errors and were concealed");
    }
    Ok(frames)
}

/// Samples a video's frames into the frame cache (once per distinct file
/// content) and returns the frame files, in order.
pub fn cached_frames(path: &Path, cache_dir: &Path) -> Result<Vec<PathBuf>, VideoError> {
    let bytes = read(path)?;
    let digest = hex::encode(&Sha256::digest(&bytes)[..12]);
    let dir = cache_dir.join("frames").join(format!("{digest}-{FRAMES_PER_VIDEO}x{MAX_FRAME_SIDE}"));
    let list = dir.join("frames.txt");
    if let Ok(listed) = std::fs::read_to_string(&list) {
        let files: Vec<PathBuf> = listed.lines().map(|name| dir.join(name)).collect();
        if !files.is_empty() && files.iter().all(|f| f.is_file()) {
            return Ok(files);
        }
    }
    let frames = decode_frames(path, &bytes, FRAMES_PER_VIDEO)?;
    let write_error = |file: &Path, reason: String| VideoError::Write { path: file.into(), reason };
    std::fs::create_dir_all(&dir).map_err(|e| write_error(&dir, e.to_string()))?;
    let mut names = Vec::with_capacity(frames.len());
    for (index, frame) in frames.iter().enumerate() {
        let name = format!("{index:02}.jpg");
        let file = dir.join(&name);
        frame.save(&file).map_err(|e| write_error(&file, e.to_string()))?;
        names.push(name);
    }
    // Written last: a listed directory is complete.
    std::fs::write(&list, names.join("\n")).map_err(|e| write_error(&list, e.to_string()))?;
    Ok(names.iter().map(|name| dir.join(name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_indices_spread_over_the_video() {
        assert_eq!(uniform_indices(32, 16), (0..16).map(|i| 2 * i + 1).collect::<Vec<_>>());
        assert_eq!(uniform_indices(160, 16)[0], 5);
        assert_eq!(uniform_indices(160, 16)[15], 155);
        assert_eq!(uniform_indices(3, 16), vec![0, 1, 2]);
        assert!(uniform_indices(0, 16).is_empty());
    }

    #[test]
    fn annex_b_rewrites_length_prefixes_and_rejects_overruns() {
        let mut out = Vec::new();
        annex_b(&[0, 0, 0, 2, 0x65, 0xAA, 0, 0, 0, 1, 0x41], 4, &mut out).unwrap();
        assert_eq!(out, vec![0, 0, 0, 1, 0x65, 0xAA, 0, 0, 0, 1, 0x41]);
        assert!(annex_b(&[0, 0, 0, 9, 0x65], 4, &mut Vec::new()).is_err());
        assert!(annex_b(&[0, 0], 4, &mut Vec::new()).is_err());
    }

    #[test]
    fn a_file_that_is_not_mp4_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.mp4");
        std::fs::write(&path, b"this is not a video").unwrap();
        let error = probe(&path).unwrap_err().to_string();
        assert!(error.contains("clip.mp4"), "{error}");
    }
}
