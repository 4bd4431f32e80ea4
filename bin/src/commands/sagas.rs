//! `bosun sagas` and `bosun saga ID`: sagas and their ledger as a readable timeline.

use bosun_queue::{
    saga::{
        saga_cancel, saga_delete, saga_get, saga_job_kind, saga_list, saga_retry, saga_start,
        saga_steps,
    },
    Saga, SagaStep, SagaStepState,
};
use serde_json::json;

use crate::{
    cli::{SagaArgs, SagasAction, SagasArgs},
    connect::Database,
    render::{clip, print_json, printable, relative, table},
    say,
};

pub async fn list_or_start(db: &Database, args: SagasArgs) -> anyhow::Result<()> {
    let pool = db.client.db();
    if let Some(SagasAction::Start {
        kind,
        key,
        inputs,
        target,
    }) = args.action
    {
        let id = saga_start(pool, &kind, &key, &inputs, target.as_deref()).await?;
        super::warn_unless_served(db, &saga_job_kind(&kind), "saga").await?;
        if args.json {
            return print_json(&json!({ "id": id }));
        }
        say!("saga {id} ({}, key {})", printable(&kind), printable(&key));
        return Ok(());
    }
    let sagas = saga_list(pool, args.state, args.kind.as_deref(), args.limit).await?;
    let unserved = super::unserved(db, sagas.iter().map(|s| saga_job_kind(&s.kind))).await?;
    if args.json {
        let listed: Vec<_> = sagas
            .iter()
            .map(|row| super::Listed {
                row,
                kind_served: !unserved.contains(&saga_job_kind(&row.kind)),
            })
            .collect();
        return print_json(&listed);
    }
    let mut out = table(&[
        "id", "kind", "key", "state", "step", "started", "served", "error",
    ]);
    for saga in &sagas {
        out.add_row(vec![
            saga.id.to_string(),
            saga.kind.clone(),
            clip(&printable(&saga.key), 32),
            saga.state.to_string(),
            saga.current_step.to_string(),
            relative(saga.created_at),
            super::served_mark(&unserved, &saga_job_kind(&saga.kind)),
            saga.error
                .as_deref()
                .map(|e| clip(e, 40))
                .unwrap_or_default(),
        ]);
    }
    say!("{out}");
    say!("{}", super::count(sagas.len(), "saga", "sagas"));
    Ok(())
}

pub async fn show(db: &Database, args: &SagaArgs) -> anyhow::Result<()> {
    let pool = db.client.db();
    if args.delete {
        let saga = saga_delete(pool, args.id).await?;
        if args.json {
            return print_json(&json!({ "deleted": saga }));
        }
        say!(
            "deleted saga {} ({}, key {})",
            saga.id,
            printable(&saga.kind),
            printable(&saga.key)
        );
        return Ok(());
    }
    let saga = if args.cancel {
        saga_cancel(pool, args.id).await?
    } else if args.retry {
        saga_retry(pool, args.id).await?
    } else {
        saga_get(pool, args.id).await?
    };
    let steps = saga_steps(pool, saga.id).await?;
    if args.json {
        return print_json(&json!({ "saga": saga, "steps": steps }));
    }
    print_timeline(&saga, &steps);
    Ok(())
}

/// `create_snapshot: undone, delete_droplet: failed (attempt 3: HTTP 500)`, one step a line.
fn print_timeline(saga: &Saga, steps: &[SagaStep]) {
    say!(
        "saga {}  {}  [{}]",
        saga.id,
        printable(&saga.kind),
        saga.state
    );
    say!("  key          {}", printable(&saga.key));
    say!("  inputs       {}", printable(&saga.inputs.to_string()));
    if let Some(target) = &saga.target {
        say!("  target       {}", printable(target));
    }
    say!(
        "  started      {} ({})",
        saga.created_at.to_rfc3339(),
        relative(saga.created_at)
    );
    if let Some(finished) = saga.finished_at {
        say!(
            "  finished     {} ({})",
            finished.to_rfc3339(),
            relative(finished)
        );
    }
    if saga.cancel_requested {
        say!("  cancel       requested");
    }
    if let Some(error) = &saga.error {
        say!("  error        {}", printable(error));
    }
    let history = saga.errors.as_array().map_or(&[][..], Vec::as_slice);
    if history.len() > 1 {
        say!("  errors:");
        for entry in history {
            say!(
                "    {}  {}",
                printable(entry["at"].as_str().unwrap_or_default()),
                printable(entry["error"].as_str().unwrap_or_default())
            );
        }
    }
    if steps.is_empty() {
        say!("  steps        (listed once a worker runs the first step)");
        return;
    }
    say!("  steps:");
    for step in steps {
        say!("    {}. {}", step.idx, printable(&step_line(step)));
    }
}

fn step_line(step: &SagaStep) -> String {
    let mut line = format!("{}: {}", step.name, step.state);
    let detail = match step.state {
        // An undo that did not run because its target is gone says so.
        SagaStepState::Undone => step.error.clone(),
        SagaStepState::Failed | SagaStepState::Running => step
            .error
            .as_deref()
            .map(|e| format!("attempt {}: {e}", step.attempts)),
        SagaStepState::UndoFailed => step
            .error
            .as_deref()
            .map(|e| format!("undo attempt {}: {e}", step.undo_attempts)),
        SagaStepState::Succeeded if step.attempts > 1 => Some(format!(
            "after {}",
            super::count(step.attempts, "attempt", "attempts")
        )),
        _ => None,
    };
    if let Some(detail) = detail {
        line.push_str(&format!(" ({detail})"));
    }
    if step.state == SagaStepState::Running {
        if let Some(pct) = step.progress_pct {
            line.push_str(&format!(
                " [{pct:.0}% {}]",
                step.progress_message.as_deref().unwrap_or_default()
            ));
        }
    }
    if !step.has_undo {
        line.push_str(" (no undo)");
    }
    line
}
