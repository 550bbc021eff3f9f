//! The guided lesson: steps (a title, an explanation, one thing to do, and the check the app
//! runs to see it done) read from a TOML file a teacher can edit or translate, validated on
//! load with the broken step named.

use std::path::Path;

use serde::Deserialize;

/// The lesson shipped with the app (`assets/lesson.toml`).
pub const DEFAULT_LESSON: &str = include_str!("../assets/lesson.toml");
/// Environment variable naming a lesson file to use instead of the embedded one.
pub const LESSON_ENV: &str = "RAAGR2_LESSON";

/// What the app watches for to call a step done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Each of the four modalities shown.
    Modalities,
    /// The dense model's Dice on the whole case is known.
    DenseDice,
    /// Magnitude pruning (l1) at a global ratio of at least 20 %, its whole-case Dice known.
    Magnitude,
    /// The Plots tab shown and the model pruned by BN gamma (slimming), its Dice known.
    Slimming,
    /// A Dice-vs-sparsity sweep with at least its first points.
    Sweep,
    /// A fine-tune finished.
    FineTune,
    /// The Slices tab shown (with the disagreement map) and the slice moved.
    Disagreement,
    /// The Attention tab's maps shown.
    Attention,
}

impl Check {
    pub const ALL: [Check; 8] = [
        Check::Modalities,
        Check::DenseDice,
        Check::Magnitude,
        Check::Slimming,
        Check::Sweep,
        Check::FineTune,
        Check::Disagreement,
        Check::Attention,
    ];

    /// The name lesson files use.
    pub fn key(self) -> &'static str {
        match self {
            Check::Modalities => "modalities",
            Check::DenseDice => "dense-dice",
            Check::Magnitude => "magnitude",
            Check::Slimming => "slimming",
            Check::Sweep => "sweep",
            Check::FineTune => "fine-tune",
            Check::Disagreement => "disagreement",
            Check::Attention => "attention",
        }
    }

    /// Whether the step waits on a background job (it shows progress and can be skipped).
    pub fn waits(self) -> bool {
        matches!(self, Check::Sweep | Check::FineTune)
    }
}

/// One step of a lesson.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub title: String,
    /// The explanation (paragraphs separated by blank lines).
    pub text: String,
    /// The one thing to do.
    pub task: String,
    pub check: Check,
}

/// A lesson: its title and steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Lesson {
    pub title: String,
    pub steps: Vec<Step>,
}

/// The file as written: every field optional, so that a missing one is named with its step.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LessonFile {
    title: Option<String>,
    #[serde(default)]
    step: Vec<StepFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    title: Option<String>,
    text: Option<String>,
    task: Option<String>,
    check: Option<String>,
}

impl Lesson {
    /// The embedded lesson.
    pub fn embedded() -> Lesson {
        Lesson::parse(DEFAULT_LESSON, "the embedded lesson").expect("the embedded lesson is valid")
    }

    /// Reads and checks a lesson file; the error names the file and, where one is at fault,
    /// the step (number and title) and what is wrong with it.
    pub fn read(path: &Path) -> Result<Lesson, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Lesson::parse(&text, &path.display().to_string())
    }

    /// Parses lesson TOML; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Lesson, String> {
        let file: LessonFile =
            toml::from_str(text).map_err(|e| format!("{origin}: not a lesson file: {e}"))?;
        if file.step.is_empty() {
            return Err(format!("{origin}: the lesson has no [[step]]"));
        }
        let steps = file
            .step
            .into_iter()
            .enumerate()
            .map(|(i, raw)| raw.checked(i + 1).map_err(|e| format!("{origin}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Lesson {
            title: file.title.unwrap_or_else(|| "Lesson".into()),
            steps,
        })
    }
}

impl StepFile {
    fn checked(self, number: usize) -> Result<Step, String> {
        let name = match &self.title {
            Some(t) if !t.trim().is_empty() => format!("step {number} (\"{}\")", t.trim()),
            _ => return Err(format!("step {number}: no title")),
        };
        let field = |value: Option<String>, what: &str| match value {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(format!("{name}: no {what}")),
        };
        let title = field(self.title.clone(), "title")?;
        let text = field(self.text, "text")?;
        let task = field(self.task, "task")?;
        let key = field(self.check, "check")?;
        let check = Check::ALL
            .into_iter()
            .find(|c| c.key() == key)
            .ok_or_else(|| {
                let known: Vec<&str> = Check::ALL.iter().map(|c| c.key()).collect();
                format!(
                    "{name}: unknown check \"{key}\"; the checks are {}",
                    known.join(", ")
                )
            })?;
        Ok(Step {
            title,
            text,
            task,
            check,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_lesson_has_every_check_once() {
        let lesson = Lesson::embedded();
        let checks: Vec<Check> = lesson.steps.iter().map(|s| s.check).collect();
        assert_eq!(checks, Check::ALL.to_vec());
    }

    #[test]
    fn a_broken_lesson_names_the_step_and_what_is_wrong() {
        let step = |title: &str, check: &str| {
            format!(
                "[[step]]\ntitle = \"{title}\"\ntext = \"t\"\ntask = \"do\"\ncheck = \"{check}\"\n"
            )
        };
        let ok = step("One", "sweep");
        let bad = format!("{ok}{}", step("Prune it", "prune-everything"));
        let error = Lesson::parse(&bad, "lesson.toml").unwrap_err();
        assert!(
            error.starts_with("lesson.toml: step 2 (\"Prune it\")"),
            "{error}"
        );
        assert!(
            error.contains("prune-everything") && error.contains("fine-tune"),
            "{error}"
        );
        let missing = format!("{ok}[[step]]\ntitle = \"Two\"\ntext = \"t\"\ncheck = \"sweep\"\n");
        let error = Lesson::parse(&missing, "lesson.toml").unwrap_err();
        assert!(error.contains("step 2 (\"Two\"): no task"), "{error}");
        let error = Lesson::parse("title = \"x\"\n[[step]\n", "lesson.toml").unwrap_err();
        assert!(error.contains("lesson.toml: not a lesson file"), "{error}");
        let error = Lesson::parse("title = \"x\"\n", "lesson.toml").unwrap_err();
        assert!(error.contains("no [[step]]"), "{error}");
        assert_eq!(Lesson::parse(&ok, "x").unwrap().steps.len(), 1);
    }
}
