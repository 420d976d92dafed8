//! `enf data synth DIR --users N --seed S`: a synthetic TVNF-like data set
//! with planted causes, so accuracy is measured against a known truth.
//!
//! Every user has hidden traits (tolerance for negative events, for
//! disturbing visuals, patience with dull content) and interests; every
//! video has a category and, for some, a planted cause that shows in its
//! title (unless the title is one of the vague ones a fifth of videos get)
//! and in its frames: a negative event (class 1), dull content (class 2,
//! also told by its length: dull videos run 20 minutes to 3 hours, others
//! under 5 minutes) or disturbing visuals (class 3). A user skips a video (play rate < 0.3)
//! when its cause meets their trait, or — less reliably — when it is outside
//! their interests; half of the skips are explicit dislikes with a reason text
//! drawn from the planted cause. A little noise keeps it from being trivial.
//! The last three interactions of each user are the items to predict.

use std::path::Path;

use enf_kit::task::Task;
use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::DataProblem;

mod oracle;
use oracle::{cause_meeting_trait, oracle_record, sft_target};

/// Frames written per video.
pub const FRAMES_PER_VIDEO: usize = 16;
/// Interactions per user.
const WATCHED_PER_USER: usize = 20;
/// The last interactions of each user that become items.
const ITEMS_PER_USER: usize = 3;

const CATEGORIES: &[(&str, [u8; 3])] = &[
    ("food", [214, 140, 60]),
    ("travel", [70, 150, 210]),
    ("sports", [60, 170, 90]),
    ("music", [150, 90, 200]),
    ("pets", [230, 200, 120]),
    ("tech", [90, 110, 130]),
    ("comedy", [240, 180, 40]),
    ("news", [120, 120, 160]),
    ("cars", [200, 60, 60]),
    ("nature", [40, 140, 70]),
];

const SUBJECTS: &[&str] =
    &["chef", "traveller", "coach", "singer", "puppy", "engineer", "comedian", "reporter", "driver", "ranger"];

/// A planted cause of negative feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    None,
    NegativeEvent,
    Dull,
    Disturbing,
}

impl Cause {
    fn class(self) -> Option<u32> {
        match self {
            Cause::None => None,
            Cause::NegativeEvent => Some(1),
            Cause::Dull => Some(2),
            Cause::Disturbing => Some(3),
        }
    }
}

struct Video {
    id: String,
    category: usize,
    cause: Cause,
    title: String,
    duration_s: f64,
}

impl Video {
    /// The length as `videos.jsonl` lists it (a tenth of a second), so the
    /// SFT targets name the length the Reason prompt shows.
    fn listed_duration_s(&self) -> f64 {
        (self.duration_s * 10.0).round() / 10.0
    }
}

struct User {
    id: String,
    interests: Vec<usize>,
    low_negativity_tolerance: bool,
    low_sensory_tolerance: bool,
    impatient: bool,
}

/// Titles that say nothing of the video: a fifth of the videos get one.
const VAGUE_TITLES: &[&str] = &["Wow!", "Part 3", "Must see", "Today's clip", "Unbelievable", "Watch this"];

fn title(rng: &mut StdRng, category: usize, cause: Cause) -> String {
    // A fifth of the videos have titles that say nothing: only their frames tell.
    if rng.random_bool(0.2) {
        return VAGUE_TITLES.choose(rng).copied().unwrap_or("Wow!").to_string();
    }
    let (name, _) = CATEGORIES[category];
    let subject = SUBJECTS[category];
    let neutral = [
        format!("A day with a {subject}: the best of {name}"),
        format!("Top 5 {name} moments this week"),
        format!("How a {subject} gets ready for a big {name} day"),
        format!("Beginner's guide to {name}"),
    ];
    let negative = [
        format!("Scandal: {subject} caught insulting fans in {name} show"),
        format!("Brawl breaks out at {name} event, crowd turns violent"),
        format!("{subject} spreads hateful rant about {name} rivals"),
    ];
    let dull = [
        format!("Three hours of uncut {name} footage, no commentary"),
        format!("Static camera: an empty {name} room, nothing happens"),
        format!("Reading the {name} rulebook aloud, page by page"),
    ];
    let disturbing = [
        format!("Graphic {name} accident: injury close-up, viewer discretion"),
        format!("Raw footage: {subject} covered in blood after {name} mishap"),
        format!("Gory {name} surgery filmed up close"),
    ];
    let options: &[String] = match cause {
        Cause::None => &neutral,
        Cause::NegativeEvent => &negative,
        Cause::Dull => &dull,
        Cause::Disturbing => &disturbing,
    };
    options.choose(rng).cloned().unwrap_or_default()
}

fn reason_text(rng: &mut StdRng, cause: Cause, category: usize) -> String {
    let (name, _) = CATEGORIES[category];
    let options: Vec<String> = match cause {
        Cause::NegativeEvent => vec![
            "I don't want to see people fighting and insulting each other".into(),
            "This spreads hate and negative values, I can't stand it".into(),
            format!("Scandals and violence at {name} events are not what I watch for"),
        ],
        Cause::Disturbing => vec![
            "Too graphic, the blood and injuries made me feel sick".into(),
            "Disturbing images, I had to look away".into(),
            "The gory close-ups are uncomfortable to watch".into(),
        ],
        Cause::Dull | Cause::None => vec![
            "So boring, nothing happens for minutes".into(),
            format!("I'm not interested in {name} at all, it has no appeal for me"),
            "Dull and slow, I lost interest right away".into(),
        ],
    };
    options.choose(rng).cloned().unwrap_or_default()
}

/// Draws one frame: the category's colour with a moving light spot, and the
/// cause's visual mark (red blotches, near-uniform grey, dark jagged stripes).
fn frame(video: &Video, index: usize) -> RgbImage {
    let (_, base) = CATEGORIES[video.category];
    let size = 64u32;
    let spot = (index as u32 * 4) % size;
    RgbImage::from_fn(size, size, |x, y| {
        let shade = |c: u8, k: i32| (i32::from(c) + k).clamp(0, 255) as u8;
        match video.cause {
            Cause::Dull => Rgb([128, 128, 130]),
            Cause::Disturbing if (x / 6 + y / 5 + index as u32).is_multiple_of(4) => Rgb([170, 10, 15]),
            Cause::NegativeEvent if (x + 2 * y + index as u32 * 3) % 11 < 3 => Rgb([20, 20, 20]),
            _ => {
                let d = (x as i32 - spot as i32).abs() + (y as i32 - 32).abs();
                let light = 60 - d.min(60);
                Rgb([shade(base[0], light), shade(base[1], light), shade(base[2], light)])
            }
        }
    })
}

fn problem(path: &Path, e: impl std::fmt::Display) -> DataProblem {
    DataProblem { file: path.to_path_buf(), line: None, message: e.to_string() }
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct SynthSummary {
    /// Users.
    pub users: usize,
    /// Videos.
    pub videos: usize,
    /// Interactions.
    pub interactions: usize,
    /// Items to predict.
    pub items: usize,
    /// Items whose truth is negative.
    pub negative_items: usize,
}

/// Writes a synthetic data set of `users` users into `dir`.
pub fn synthesize(dir: &Path, users: usize, seed: u64) -> Result<SynthSummary, DataProblem> {
    let mut rng = StdRng::seed_from_u64(seed);
    std::fs::create_dir_all(dir.join("frames")).map_err(|e| problem(dir, e))?;
    let video_count = (users * 8).max(40);
    let videos: Vec<Video> = (0..video_count)
        .map(|i| {
            let category = rng.random_range(0..CATEGORIES.len());
            let roll: f64 = rng.random();
            let cause = match roll {
                r if r < 0.14 => Cause::NegativeEvent,
                r if r < 0.28 => Cause::Dull,
                r if r < 0.42 => Cause::Disturbing,
                _ => Cause::None,
            };
            let title = title(&mut rng, category, cause);
            let duration_s =
                if cause == Cause::Dull { rng.random_range(1200.0..10800.0) } else { rng.random_range(20.0..300.0) };
            Video { id: format!("v{i:04}"), category, cause, title, duration_s }
        })
        .collect();
    let occupations =
        ["nurse", "teacher", "student", "engineer", "driver", "chef", "retired", "designer", "farmer", "clerk"];
    let people: Vec<User> = (0..users)
        .map(|i| {
            let mut interests: Vec<usize> = (0..CATEGORIES.len()).collect();
            interests.sort_by_key(|_| rng.random::<u32>());
            interests.truncate(rng.random_range(2..=3));
            User {
                id: format!("u{i:03}"),
                interests,
                low_negativity_tolerance: rng.random_bool(0.6),
                low_sensory_tolerance: rng.random_bool(0.5),
                impatient: rng.random_bool(0.5),
            }
        })
        .collect();

    let mut video_lines = Vec::new();
    for video in &videos {
        let frame_dir = dir.join("frames").join(&video.id);
        std::fs::create_dir_all(&frame_dir).map_err(|e| problem(&frame_dir, e))?;
        let mut frames = Vec::new();
        for index in 0..FRAMES_PER_VIDEO {
            let path = frame_dir.join(format!("{index:02}.png"));
            frame(video, index).save(&path).map_err(|e| problem(&path, e))?;
            frames.push(format!("frames/{}/{index:02}.png", video.id));
        }
        video_lines.push(json!({
            "video_id": video.id,
            "title": video.title,
            "duration_s": video.listed_duration_s(),
            "category": CATEGORIES[video.category].0,
            "frames": frames,
        }));
    }

    let mut user_lines = Vec::new();
    let mut interactions = Vec::new();
    let mut items = Vec::new();
    let mut targets = Vec::new();
    let mut oracle = Vec::new();
    let mut summary = SynthSummary { users, videos: videos.len(), ..SynthSummary::default() };
    for user in &people {
        user_lines.push(json!({
            "user_id": user.id,
            "age": rng.random_range(18..66),
            "gender": if rng.random_bool(0.5) { "female" } else { "male" },
            "occupation": occupations.choose(&mut rng).copied().unwrap_or("clerk"),
            "interests": user.interests.iter().map(|&c| CATEGORIES[c].0).collect::<Vec<_>>(),
        }));
        let mut ts = 1_700_000_000i64 + rng.random_range(0..86_400);
        let mut watched: Vec<&str> = Vec::new();
        for n in 0..WATCHED_PER_USER {
            let in_interest = rng.random_bool(0.7);
            let fresh = |v: &&Video| !watched.contains(&v.id.as_str());
            let mut pool: Vec<&Video> =
                videos.iter().filter(|v| user.interests.contains(&v.category) == in_interest).filter(fresh).collect();
            if pool.is_empty() {
                pool = videos.iter().filter(fresh).collect();
            }
            let Some(video) = pool.choose(&mut rng).copied() else { continue };
            watched.push(&video.id);
            // The cause meeting the user's trait, else the generator's noise:
            // half the videos outside their interests, and 5 % at random.
            let planted = cause_meeting_trait(user, video)
                .or_else(|| ((!in_interest && rng.random_bool(0.5)) || rng.random_bool(0.05)).then_some(Cause::Dull));
            let (play_rate, disliked, class, reason) = match planted {
                Some(cause) => {
                    let disliked = rng.random_bool(0.5);
                    let reason = disliked.then(|| reason_text(&mut rng, cause, video.category));
                    (rng.random_range(0.01..0.28), disliked, cause.class(), reason)
                }
                None => (rng.random_range(0.45..1.0), false, None, None),
            };
            let play_rate: f64 = (play_rate * 1000.0f64).round() / 1000.0;
            ts += rng.random_range(60..7_200);
            interactions.push(json!({
                "user_id": user.id,
                "video_id": video.id,
                "ts": ts,
                "watch_s": (video.duration_s * play_rate * 10.0).round() / 10.0,
                "play_rate": play_rate,
                "disliked": disliked,
                "reason_class": class,
                "reason_text": reason,
            }));
            if n >= WATCHED_PER_USER - ITEMS_PER_USER {
                items.push((json!({ "user_id": user.id, "video_id": video.id }), planted.is_some()));
                let item_id = format!("{}/{}", user.id, video.id);
                let target = sft_target(user, video);
                targets.push(json!({ "item_id": item_id, "target": target }));
                oracle.push(oracle_record(&item_id, user, video));
            }
        }
    }
    summary.items = items.len();
    summary.negative_items = items.iter().filter(|(_, negative)| *negative).count();
    let items: Vec<serde_json::Value> = items.into_iter().map(|(i, _)| i).collect();
    summary.interactions = interactions.len();

    super::write_jsonl(&dir.join("users.jsonl"), &user_lines)?;
    super::write_jsonl(&dir.join("videos.jsonl"), &video_lines)?;
    super::write_jsonl(&dir.join("interactions.jsonl"), &interactions)?;
    super::write_jsonl(&dir.join("items.jsonl"), &items)?;
    super::write_jsonl(&dir.join("sft.jsonl"), &targets)?;
    super::write_jsonl(&dir.join("oracle.jsonl"), &oracle)?;
    let task = toml::to_string(&Task::default()).map_err(|e| problem(dir, e))?;
    let config = format!(
        "# Task configuration of this data set: which play rate is an implicit\n# negative, and the reason classes (the paper's three).\n{task}"
    );
    std::fs::write(dir.join("dataset.toml"), config).map_err(|e| problem(&dir.join("dataset.toml"), e))?;
    Ok(summary)
}
