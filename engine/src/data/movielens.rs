//! MovieLens-100k in the Agent4Rec protocol (paper Table 6), read from the
//! copy inside the PyPI package `recbole` (`recbole/dataset_example/ml-100k/`,
//! tab-separated files with a typed header line; fetched by `.ci/setup`,
//! never committed).
//!
//! For each sampled user: `positives` movies the user rated above 3 are held
//! out as candidates labelled "like", `ratio × positives` movies the user
//! never rated are candidates labelled "negative", and the user's other
//! ratings are the watch history (play rate = rating / 5, so a 1-star rating
//! reads as a fast skip). The result is a TVNF data set with `items.jsonl`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::json;

use super::DataProblem;

/// How to sample.
#[derive(Debug, Clone)]
pub struct Agent4RecOptions {
    /// Users to sample.
    pub users: usize,
    /// Liked movies held out per user.
    pub positives: usize,
    /// Unseen movies per held-out liked movie (the m of 1:m).
    pub ratio: usize,
    /// Random seed.
    pub seed: u64,
}

struct Rating {
    user: String,
    item: String,
    rating: f64,
    ts: i64,
}

/// Reads a recbole atomic file: a typed header, then tab-separated rows.
fn read_table(path: &Path) -> Result<Vec<HashMap<String, String>>, DataProblem> {
    let problem = |line: Option<usize>, message: String| DataProblem { file: path.to_path_buf(), line, message };
    let bytes = std::fs::read(path).map_err(|e| problem(None, e.to_string()))?;
    // ml-100k titles are Latin-1.
    let text: String = bytes.iter().map(|&b| b as char).collect();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| problem(Some(1), "empty file".into()))?
        .split('\t')
        .map(|h| h.split(':').next().unwrap_or(h).to_string())
        .collect();
    let mut rows = Vec::new();
    for (index, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split('\t').collect();
        if cells.len() != header.len() {
            return Err(problem(Some(index + 2), format!("{} columns, the header has {}", cells.len(), header.len())));
        }
        rows.push(header.iter().cloned().zip(cells.iter().map(|c| c.to_string())).collect());
    }
    Ok(rows)
}

fn field<'a>(row: &'a HashMap<String, String>, name: &str, path: &Path) -> Result<&'a str, DataProblem> {
    row.get(name).map(String::as_str).ok_or_else(|| DataProblem {
        file: path.to_path_buf(),
        line: None,
        message: format!("no `{name}` column"),
    })
}

/// Converts `source` (the ml-100k folder) into a TVNF data set in `out`.
pub fn convert(
    source: &Path,
    out: &Path,
    options: &Agent4RecOptions,
) -> Result<super::synth::SynthSummary, DataProblem> {
    let inter_path = source.join("ml-100k.inter");
    let item_path = source.join("ml-100k.item");
    let user_path = source.join("ml-100k.user");
    let mut ratings = Vec::new();
    for row in read_table(&inter_path)? {
        let number = |name: &str| -> Result<f64, DataProblem> {
            field(&row, name, &inter_path)?.parse::<f64>().map_err(|e| DataProblem {
                file: inter_path.clone(),
                line: None,
                message: format!("{name}: {e}"),
            })
        };
        ratings.push(Rating {
            user: field(&row, "user_id", &inter_path)?.to_string(),
            item: field(&row, "item_id", &inter_path)?.to_string(),
            rating: number("rating")?,
            ts: number("timestamp")? as i64,
        });
    }
    let movies: BTreeMap<String, HashMap<String, String>> =
        read_table(&item_path)?.into_iter().filter_map(|row| row.get("item_id").cloned().map(|id| (id, row))).collect();
    let people: BTreeMap<String, HashMap<String, String>> =
        read_table(&user_path)?.into_iter().filter_map(|row| row.get("user_id").cloned().map(|id| (id, row))).collect();

    let mut by_user: BTreeMap<&str, Vec<&Rating>> = BTreeMap::new();
    for r in &ratings {
        by_user.entry(r.user.as_str()).or_default().push(r);
    }
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut eligible: Vec<&str> = by_user
        .iter()
        .filter(|(_, rs)| {
            rs.iter().filter(|r| r.rating > 3.0).count() > options.positives && rs.len() >= options.positives + 10
        })
        .map(|(u, _)| *u)
        .collect();
    eligible.shuffle(&mut rng);
    eligible.truncate(options.users);
    eligible.sort_unstable();

    let all_movies: Vec<&String> = movies.keys().collect();
    let genres = |id: &str| movies.get(id).and_then(|m| m.get("class")).cloned().unwrap_or_default();
    let mut used_movies: HashSet<String> = HashSet::new();
    let (mut users, mut interactions, mut items) = (Vec::new(), Vec::new(), Vec::new());
    let mut summary = super::synth::SynthSummary::default();
    for user in &eligible {
        let rated = &by_user[user];
        let seen: HashSet<&str> = rated.iter().map(|r| r.item.as_str()).collect();
        let liked: Vec<&&Rating> = rated.iter().filter(|r| r.rating > 3.0).collect();
        let held: Vec<&str> = liked.choose_multiple(&mut rng, options.positives).map(|r| r.item.as_str()).collect();
        let unseen: Vec<&&String> = all_movies.iter().filter(|m| !seen.contains(m.as_str())).collect();
        let negatives: Vec<&str> =
            unseen.choose_multiple(&mut rng, options.ratio * held.len()).map(|m| m.as_str()).collect();
        let mut genre_counts: BTreeMap<String, usize> = BTreeMap::new();
        for r in rated.iter().filter(|r| r.rating > 3.0 && !held.contains(&r.item.as_str())) {
            for g in genres(&r.item).split(' ').filter(|g| !g.is_empty()) {
                *genre_counts.entry(g.to_string()).or_default() += 1;
            }
        }
        let mut top: Vec<(String, usize)> = genre_counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let person = people.get(*user);
        let get = |k: &str| person.and_then(|p| p.get(k)).cloned();
        users.push(json!({
            "user_id": format!("u{user}"),
            "age": get("age").and_then(|a| a.parse::<u32>().ok()),
            "gender": get("gender").map(|g| if g == "F" { "female".to_string() } else { "male".to_string() }),
            "occupation": get("occupation"),
            "interests": top.iter().take(3).map(|(g, _)| g.to_lowercase()).collect::<Vec<_>>(),
        }));
        let mut history: Vec<&&Rating> = rated.iter().filter(|r| !held.contains(&r.item.as_str())).collect();
        history.sort_by_key(|r| r.ts);
        for r in history {
            used_movies.insert(r.item.clone());
            let play_rate = r.rating / 5.0;
            interactions.push(json!({
                "user_id": format!("u{user}"),
                "video_id": format!("m{}", r.item),
                "ts": r.ts,
                "watch_s": (5400.0 * play_rate).round(),
                "play_rate": play_rate,
                "disliked": false,
            }));
        }
        for (movie, label) in held.iter().map(|m| (m, "like")).chain(negatives.iter().map(|m| (m, "negative"))) {
            used_movies.insert(movie.to_string());
            items.push(json!({ "user_id": format!("u{user}"), "video_id": format!("m{movie}"), "label": label }));
            summary.negative_items += usize::from(label == "negative");
        }
    }
    let mut videos = Vec::new();
    for id in &used_movies {
        let Some(movie) = movies.get(id) else { continue };
        let title = movie.get("movie_title").cloned().unwrap_or_default();
        let year = movie.get("release_year").cloned().unwrap_or_default();
        videos.push(json!({
            "video_id": format!("m{id}"),
            "title": if year.is_empty() { title } else { format!("{title} ({year})") },
            "duration_s": 5400.0,
            "category": genres(id).to_lowercase().replace(' ', ", "),
        }));
    }
    videos.sort_by(|a, b| a["video_id"].as_str().cmp(&b["video_id"].as_str()));
    summary.users = users.len();
    summary.videos = videos.len();
    summary.interactions = interactions.len();
    summary.items = items.len();
    std::fs::create_dir_all(out).map_err(|e| DataProblem {
        file: out.to_path_buf(),
        line: None,
        message: e.to_string(),
    })?;
    for (name, lines) in [
        ("users.jsonl", &users),
        ("videos.jsonl", &videos),
        ("interactions.jsonl", &interactions),
        ("items.jsonl", &items),
    ] {
        let path = out.join(name);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text).map_err(|e| DataProblem {
            file: path.clone(),
            line: None,
            message: e.to_string(),
        })?;
    }
    Ok(summary)
}
