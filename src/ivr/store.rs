//! The script in force, and its reload (SIGHUP or the admin API).
//!
//! Each call takes an `Arc<Script>` when it starts and keeps it to the end, so a reload
//! changes what new calls get and never what a call in progress hears. A reload that fails
//! validation keeps the script in force and returns every problem.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::script::{self, Context, Problem, Script};

/// The script in force.
#[derive(Debug)]
pub struct ScriptStore {
    path: PathBuf,
    ctx: Context,
    current: RwLock<Arc<Script>>,
}

impl ScriptStore {
    /// Loads and validates the script at `path`.
    pub fn load(path: &Path, ctx: Context) -> Result<Self, Vec<Problem>> {
        let s = script::load(path, &ctx)?;
        Ok(ScriptStore {
            path: path.to_path_buf(),
            ctx,
            current: RwLock::new(Arc::new(s)),
        })
    }

    /// The script a new call gets.
    pub fn current(&self) -> Arc<Script> {
        // A poisoned lock still holds a whole Arc (writers only swap it), so it is safe to use.
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the file again; on success new calls get the new version, on failure the script
    /// in force stays and the problems are returned.
    pub fn reload(&self) -> Result<Arc<Script>, Vec<Problem>> {
        let fresh = Arc::new(script::load(&self.path, &self.ctx)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&fresh);
        tracing::info!(
            script = %self.path.display(),
            nodes = fresh.nodes.len(),
            "IVR script reloaded"
        );
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivr::facts::CallFacts;
    use crate::ivr::session::{Action, Event, Session};

    fn any() -> CallFacts {
        CallFacts {
            caller: "13812345678".into(),
            minute_of_day: 600,
            workday: true,
            waiting: Default::default(),
            may_call_back: true,
        }
    }

    fn flow(greeting: &str) -> String {
        format!(
            "start = \"hello\"\n[nodes.hello]\ntype = \"play\"\nprompt = {{ text = \"{greeting}\" }}\nnext = \"bye\"\n[nodes.bye]\ntype = \"hangup\"\n"
        )
    }

    fn played(a: &[Action]) -> Option<&str> {
        a.iter().find_map(|a| match a {
            Action::Play { prompt } => prompt.text.as_deref(),
            _ => None,
        })
    }

    #[test]
    fn a_call_in_progress_keeps_its_script_while_new_calls_get_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ivr.toml");
        std::fs::write(&path, flow("old greeting")).unwrap();
        let store = ScriptStore::load(&path, Context::default()).unwrap();
        let mut old_call = Session::new(store.current());
        assert_eq!(
            played(&old_call.handle(Event::Start, &any())),
            Some("old greeting")
        );

        // The new version plays a different greeting and ends in a queue, not a hang-up.
        std::fs::write(
            &path,
            flow("new greeting")
                .replace("type = \"hangup\"", "type = \"queue\"\nqueue = \"general\""),
        )
        .unwrap();
        store.reload().unwrap();
        let mut new_call = Session::new(store.current());
        assert_eq!(
            played(&new_call.handle(Event::Start, &any())),
            Some("new greeting")
        );
        assert!(matches!(
            new_call.handle(Event::PromptDone, &any())[..],
            [Action::Enqueue { .. }]
        ));
        // The old call finishes on the version it started with.
        assert_eq!(old_call.handle(Event::PromptDone, &any()), [Action::Hangup]);
    }

    #[test]
    fn a_reload_that_fails_validation_keeps_the_script_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ivr.toml");
        std::fs::write(&path, flow("greeting")).unwrap();
        let store = ScriptStore::load(&path, Context::default()).unwrap();
        std::fs::write(
            &path,
            flow("greeting").replace("next = \"bye\"", "next = \"byee\""),
        )
        .unwrap();
        let problems = store.reload().unwrap_err();
        assert!(
            problems[0]
                .to_string()
                .contains("\"byee\", which does not exist")
        );
        let mut call = Session::new(store.current());
        assert_eq!(played(&call.handle(Event::Start, &any())), Some("greeting"));
        assert_eq!(call.handle(Event::PromptDone, &any()), [Action::Hangup]);
    }
}
