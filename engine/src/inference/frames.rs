//! Reading the frames a request names from disk, off the async threads.

use image::DynamicImage;

use super::Frame;

/// Loads every frame, or says which one cannot be read and why.
pub async fn load_frames(frames: &[Frame]) -> Result<Vec<DynamicImage>, String> {
    let frames = frames.to_vec();
    tokio::task::spawn_blocking(move || {
        frames
            .iter()
            .map(|frame| {
                image::open(&frame.path).map_err(|e| {
                    format!(
                        "cannot read frame {} of video `{}` ({}): {e}",
                        frame.index,
                        frame.video_id,
                        frame.path.display()
                    )
                })
            })
            .collect()
    })
    .await
    .map_err(|e| format!("frame loading failed: {e}"))?
}

/// Reads a frame's encoded bytes and its MIME type (for data URLs).
pub async fn read_frame_bytes(frame: &Frame) -> Result<(Vec<u8>, &'static str), String> {
    let bytes = tokio::fs::read(&frame.path).await.map_err(|e| {
        format!("cannot read frame {} of video `{}` ({}): {e}", frame.index, frame.video_id, frame.path.display())
    })?;
    let mime = match image::guess_format(&bytes) {
        Ok(image::ImageFormat::Png) => "image/png",
        Ok(image::ImageFormat::Jpeg) => "image/jpeg",
        Ok(image::ImageFormat::WebP) => "image/webp",
        _ => {
            return Err(format!(
                "frame {} of video `{}` ({}) is not a PNG, JPEG or WebP image",
                frame.index,
                frame.video_id,
                frame.path.display()
            ));
        }
    };
    Ok((bytes, mime))
}
