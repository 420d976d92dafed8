//! Shared set-up of the end-to-end tests: builds the fixture agents from
//! source (once per test binary; cargo makes repeated builds no-ops), runs
//! the real `enf` binary, and writes data sets, models and graphs into
//! temporary directories.
#![allow(dead_code)]

pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{Value, json};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("engine/ has a parent").to_path_buf()
}

/// Builds a guest workspace for wasm32-wasip2 and returns its release folder.
pub fn build_guests(manifest: &Path, target_dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("running cargo to build guest components");
    assert!(
        output.status.success(),
        "building {} failed (is the target installed? `rustup target add wasm32-wasip2`):\n{}",
        manifest.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    target_dir.join("wasm32-wasip2").join("release")
}

/// The folder of built fixture components (tests/fixtures), built on first use.
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = repo_root().join("tests").join("fixtures");
        build_guests(&root.join("Cargo.toml"), &root.join("target"))
    })
}

/// The folder of the ENF agents (profile, video, reason, digest) built from plugins/.
pub fn agents() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = repo_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "--profile", "wasm", "--target", "wasm32-wasip2"])
            .args(["-p", "profile-agent", "-p", "video-agent", "-p", "reason-agent", "-p", "digest-agent"])
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .expect("running cargo to build the agents");
        assert!(output.status.success(), "building the agents failed:\n{}", String::from_utf8_lossy(&output.stderr));
        root.join("target").join("wasm32-wasip2").join("wasm")
    })
}

/// A shipped graph (graphs/NAME.toml) rewritten for a test: plugins from the
/// freshly built agents, the model from `manifest`.
pub fn shipped_graph(ws: &Workspace, name: &str, manifest: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("graphs").join(format!("{name}.toml"))).unwrap();
    ws.write(&format!("{name}.toml"), &with_built_agents(&text, "../", manifest))
}

/// `text` (a graph whose paths start with `prefix`, e.g. `../` or `../../`)
/// with its plugins from the freshly built agents and its SmolLM2 model
/// replaced by `manifest`.
pub fn with_built_agents(text: &str, prefix: &str, manifest: &Path) -> String {
    let mut text = text.replace(&format!("{prefix}models/smollm2-135m.toml"), &manifest.display().to_string());
    for agent in ["profile-agent", "video-agent", "reason-agent", "digest-agent"] {
        let built = agents().join(format!("{}.wasm", agent.replace('-', "_")));
        text = text.replace(&format!("{prefix}plugins/dist/{agent}.wasm"), &built.display().to_string());
    }
    text
}

/// Path of a fixture component, e.g. `fixture("echo_agent")`.
pub fn fixture(name: &str) -> PathBuf {
    let path = fixtures().join(format!("{name}.wasm"));
    assert!(path.is_file(), "fixture {} was not built", path.display());
    path
}

/// A temporary directory holding a test's data, models, graphs and cache.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temporary directory") }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes a file (creating folders) and returns its path.
    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes an echo model manifest `models/NAME.toml` with extra TOML lines.
    pub fn echo_model(&self, name: &str, extra: &str) -> PathBuf {
        self.write(
            &format!("models/{name}.toml"),
            &format!("name = \"{name}\"\nbackend = \"echo\"\nimages = true\n{extra}\n"),
        )
    }

    /// Writes the tiny generated Llama to `models/tiny-text` and its manifest
    /// (`models/tiny-text.toml`: CPU, f32, greedy, 8 new tokens); returns the manifest.
    pub fn tiny_text_model(&self) -> PathBuf {
        let dir = self.path("models/tiny-text");
        let output = self.enf(&["model", "tiny-text", dir.to_str().unwrap(), "--arch", "llama"]);
        assert!(output.status.success(), "{}", text(&output));
        self.write(
            "models/tiny-text.toml",
            "name = \"tiny-text\"\nbackend = \"mistralrs\"\n[mistralrs]\nsource = { dir = \"tiny-text\" }\narchitecture = \"llama\"\ndtype = \"f32\"\ndevice = \"cpu\"\nprefix_cache = 0\n[sampling]\ntemperature = 0.0\nmax_tokens = 8\n",
        )
    }

    /// Writes the tiny generated Qwen2.5-VL to `models/tiny-vl` (once) and a
    /// manifest for it, `models/tiny-vl.toml` (CPU, f32), with extra lines
    /// for its `[mistralrs]` table and a `[sampling]` table when `sampling`
    /// is not empty; returns the manifest.
    pub fn tiny_vl_model(&self, mistralrs_extra: &str, sampling: &str) -> PathBuf {
        let dir = self.path("models/tiny-vl");
        if !dir.join("model.safetensors").is_file() {
            let output = self.enf(&["model", "tiny-vl", dir.to_str().unwrap()]);
            assert!(output.status.success(), "{}", text(&output));
        }
        let sampling = if sampling.is_empty() { String::new() } else { format!("[sampling]\n{sampling}\n") };
        self.write(
            "models/tiny-vl.toml",
            &format!(
                "name = \"tiny-vl\"\nbackend = \"mistralrs\"\nimages = true\n[mistralrs]\nsource = {{ dir = \"tiny-vl\" }}\narchitecture = \"qwen2.5-vl\"\ndtype = \"f32\"\ndevice = \"cpu\"\n{mistralrs_extra}\n{sampling}"
            ),
        )
    }

    /// Writes a TVNF data set of `users` users with `per_user` interactions
    /// each (so `users * per_user` items); every video has two frame files.
    pub fn data(&self, users: usize, per_user: usize) -> PathBuf {
        let mut users_lines = String::new();
        let mut videos_lines = String::new();
        let mut interactions = String::new();
        for v in 0..per_user.max(1) {
            let frames: Vec<String> = (0..2).map(|f| format!("frames/v{v}_{f}.png")).collect();
            for (f, frame) in frames.iter().enumerate() {
                write_png(&self.path(&format!("data/{frame}")), 64, (v * 2 + f) as u8);
            }
            videos_lines.push_str(&format!("{}\n", json!({"video_id": format!("v{v}"), "title": format!("Video number {v}"), "duration_s": 60.0, "frames": frames, "category": "test"})));
        }
        for u in 0..users {
            users_lines.push_str(&format!("{}\n", json!({"user_id": format!("u{u}"), "age": 20 + u, "gender": "f", "occupation": "tester", "interests": ["testing"]})));
            for v in 0..per_user {
                let rate = if (u + v) % 3 == 0 { 0.1 } else { 0.8 };
                interactions.push_str(&format!("{}\n", json!({"user_id": format!("u{u}"), "video_id": format!("v{v}"), "ts": v, "watch_s": 60.0 * rate, "play_rate": rate, "disliked": false})));
            }
        }
        self.write("data/users.jsonl", &users_lines);
        self.write("data/videos.jsonl", &videos_lines);
        self.write("data/interactions.jsonl", &interactions);
        self.path("data")
    }

    /// Runs `enf` with `args` (plus this workspace's compile cache).
    pub fn enf(&self, args: &[&str]) -> Output {
        self.enf_command(args).output().expect("running enf")
    }

    /// The `enf` command with this workspace's cache directory set.
    pub fn enf_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_enf"));
        command.args(args).env("ENF_CACHE_DIR", self.path("cache")).env_remove("RUST_LOG");
        command
    }

    /// Runs `enf run GRAPH --data DATA --out OUT` plus `extra` and returns
    /// the output lines parsed, by item id.
    pub fn run(&self, graph: &Path, data: &Path, out: &Path, extra: &[&str]) -> (Output, Vec<Value>) {
        let output = self.run_command(graph, data, out, extra).output().expect("running enf");
        let records = read_records(out);
        (output, records)
    }

    /// The `enf run GRAPH --data DATA --out OUT` command plus `extra`, to
    /// adjust (environment) before running it.
    pub fn run_command(&self, graph: &Path, data: &Path, out: &Path, extra: &[&str]) -> Command {
        let mut args =
            vec!["run", graph.to_str().unwrap(), "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.enf_command(&args)
    }
}

/// Writes a `size`×`size` PNG whose colours depend on `shade`.
pub fn write_png(path: &Path, size: u32, shade: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let image = image::RgbImage::from_fn(size, size, |x, y| {
        image::Rgb([(x * 255 / size) as u8 ^ shade.wrapping_mul(37), (y * 255 / size) as u8, shade.wrapping_mul(91)])
    });
    image.save(path).unwrap();
}

/// Builds the Python agent in `agent_dir` (its `app.py`) with
/// `plugins/python/build.sh` against `wit_dir` and returns the component,
/// `tests/fixtures/target/python/AGENT-WITDIR.wasm`. The script skips the
/// build when nothing that goes into it changed, so each is built once
/// across test binaries and runs.
pub fn python_component(agent_dir: &Path, wit_dir: &Path) -> PathBuf {
    static BUILDS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = repo_root();
    let name = |dir: &Path| dir.file_name().unwrap().to_string_lossy().to_string();
    let out = root.join("tests").join("fixtures").join("target").join("python").join(format!(
        "{}-{}.wasm",
        name(agent_dir),
        name(wit_dir)
    ));
    let output = Command::new(root.join("plugins").join("python").join("build.sh"))
        .arg(agent_dir)
        .arg(&out)
        .arg(wit_dir)
        .output()
        .expect("running plugins/python/build.sh");
    assert!(
        output.status.success() && out.is_file(),
        "building the Python agent {} failed (is componentize-py installed? run .ci/setup):\n{}",
        agent_dir.display(),
        text(&output)
    );
    out
}

/// A Python fixture (tests/fixtures/python/NAME) built against wit/.
pub fn python_fixture(name: &str) -> PathBuf {
    let root = repo_root();
    python_component(&root.join("tests").join("fixtures").join("python").join(name), &root.join("wit"))
}

/// A Python agent of plugins/python (e.g. `reason-agent`) built against wit/.
pub fn python_agent(name: &str) -> PathBuf {
    let root = repo_root();
    python_component(&root.join("plugins").join("python").join(name), &root.join("wit"))
}

/// Path of a model directory under `models/` that `.ci/setup` prepares.
pub fn prepared_model(name: &str) -> PathBuf {
    let dir = repo_root().join("models").join(name);
    assert!(dir.join("config.json").is_file(), "{} is missing: run .ci/setup first", dir.display());
    dir
}

/// Parses a predictions file (missing file: no records).
pub fn read_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line in {}: {e}: {l}", path.display())))
        .collect()
}

/// stdout + stderr of a process, for assertion messages.
pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Asserts that `enf run` finished with some items failed (exit code 2).
pub fn assert_finished_with_failures(output: &Output) {
    assert_eq!(output.status.code(), Some(2), "exit code 2 (run finished, some items failed): {}", text(output));
}
