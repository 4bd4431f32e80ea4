//! `bosun targets` and `bosun expunge TARGET`: the external things work acts on, and how to
//! declare one gone for good.

use bosun_queue::targets::{target_expunge, target_get, target_list, target_register};

use crate::{
    cli::{ExpungeArgs, TargetsAction, TargetsArgs},
    connect::Database,
    render::{clip, print_json, printable, relative, table},
    say,
};

pub async fn list_or_register(db: &Database, args: TargetsArgs) -> anyhow::Result<()> {
    let pool = db.client.db();
    if let Some(TargetsAction::Register { name, kind }) = args.action {
        let target = target_register(pool, &name, kind.as_deref()).await?;
        if args.json {
            return print_json(&target);
        }
        say!(
            "target {} ({}) is {}",
            printable(&target.name),
            printable(target.kind.as_deref().unwrap_or("no kind")),
            target.state
        );
        return Ok(());
    }
    let targets = target_list(pool).await?;
    if args.json {
        return print_json(&targets);
    }
    let mut out = table(&[
        "target",
        "kind",
        "state",
        "live jobs",
        "live sagas",
        "reaped jobs",
        "expunged",
        "reason",
    ]);
    for stats in &targets {
        let t = &stats.target;
        out.add_row(vec![
            t.name.clone(),
            t.kind.clone().unwrap_or_default(),
            t.state.to_string(),
            stats.live_jobs.to_string(),
            stats.live_sagas.to_string(),
            t.reaped_jobs.to_string(),
            t.expunged_at.map(relative).unwrap_or_default(),
            t.reason.as_deref().map(|r| clip(r, 40)).unwrap_or_default(),
        ]);
    }
    say!("{out}");
    say!(
        "{}, {} expunged",
        super::count(targets.len(), "target", "targets"),
        targets
            .iter()
            .filter(|t| t.target.state == bosun_queue::TargetState::Expunged)
            .count()
    );
    Ok(())
}

pub async fn expunge(db: &Database, args: &ExpungeArgs) -> anyhow::Result<()> {
    let pool = db.client.db();
    let before = target_get(pool, &args.target).await?;
    let target = target_expunge(pool, &args.target, args.reason.as_deref()).await?;
    if args.json {
        return print_json(&target);
    }
    if before.target.state == bosun_queue::TargetState::Expunged {
        say!(
            "target {} was already expunged {} ({})",
            printable(&target.name),
            target.expunged_at.map(relative).unwrap_or_default(),
            printable(target.reason.as_deref().unwrap_or("no reason given"))
        );
    } else {
        say!(
            "expunged target {}: {} and {} on it are reaped by the maintenance leader",
            printable(&target.name),
            super::count(before.live_jobs, "live job", "live jobs"),
            super::count(before.live_sagas, "live saga", "live sagas")
        );
    }
    Ok(())
}
