//! Agent mode as a session request: a task on a project, as a job the host can stop, with the
//! session's model deciding; each run is kept in the project's data (`agent-runs/`) so that it
//! can be rewound to before any of its steps.

use std::path::Path;

use super::{ModelEvent, Session};
use crate::agent::commands::CommandLog;
use crate::agent::{self, AgentEvent, AgentOptions, AgentReport, Decision, Mode, ModelBrain, Workbench};
use crate::edit::{self, AppliedChange};
use crate::error::{Error, Result};
use crate::network::NetworkPolicy;
use crate::records::RecordDir;

/// Where an agent run's progress goes: the model's load, each step, and the approval of
/// commands (the host asks the user and answers).
pub struct AgentStreams<'a> {
    /// Told when a model is loaded for the run.
    pub model: &'a mut (dyn FnMut(ModelEvent) + Send),
    /// Told each call before it runs and each step when it is done.
    pub events: &'a mut (dyn FnMut(AgentEvent) + Send),
    /// Asked before a command runs that the approval mode does not already allow.
    pub approve: &'a mut (dyn FnMut(&str) -> Decision + Send),
}

fn runs(project_data: &Path) -> RecordDir {
    RecordDir::new(project_data.join("agent-runs"), "agent run")
}

impl Session {
    /// Works on `task` in the project at `root` with the agent's tools, as job `job`, until
    /// the agent is done, a bound in `options` is reached or the job is cancelled. The run is
    /// kept (its id is the report's) for [`Session::rewind_agent`].
    pub async fn agent(&self, root: &Path, task: &str, options: &AgentOptions, job: &str, streams: AgentStreams<'_>) -> Result<AgentReport> {
        let (project, index) = self.open_project(root)?;
        let (_job, cancel) = self.job(job)?;
        let model = self.model(streams.model).await?;
        let mode = options.mode.unwrap_or_else(|| Mode::for_model(model.parameter_count()));
        let bench = Workbench {
            index: &index,
            proposals: project.proposals(),
            history: project.history(),
            data_dir: project.data_dir().to_path_buf(),
            command_log: CommandLog::in_dir(&self.data_dir),
            commands_forbidden: NetworkPolicy::default_location()?.commands_forbidden(),
        };
        let brain = ModelBrain { model: &model };
        let report = agent::run(&brain, &bench, task, mode, options, streams.events, streams.approve, &cancel).await?;
        runs(project.data_dir()).save(&report.id, &report)?;
        Ok(report)
    }

    /// Undoes every change agent run `run` made at step `step` (1-based) or later, latest
    /// first: the project's files are back to their bytes before that step. Changes already
    /// undone are skipped; a file changed since is a conflict and that change stays.
    pub fn rewind_agent(&self, root: &Path, run: &str, step: usize) -> Result<Vec<AppliedChange>> {
        let (project, index) = self.open_project(root)?;
        let report: AgentReport = runs(project.data_dir()).load(run)?;
        let history = project.history();
        let mut undone = Vec::new();
        for id in report.changes_from(step) {
            match edit::undo(index.root(), &history, Some(&id)) {
                Ok(change) => undone.push(change),
                Err(Error::AlreadyUndone { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(undone)
    }
}
