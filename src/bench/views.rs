//! `bench --views`: how long the app's filter and attention views wait for their maps, timed
//! as the app sees it: requests sent to the real background worker on the default case, each
//! timed from send to answer.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde::Serialize;

use crate::prune::{PruneMethod, PrunePlan, StructuredMethod};
use crate::worker::{self, MapsRequest, PreviewRequest, Request, Response, WorkerHandle};

/// Longest wait for one answer (the default case is generated on a first start).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

/// Send-to-answer times of the views, milliseconds.
#[derive(Debug, Serialize)]
pub struct ViewTimings {
    /// The first filter view (the dense model built and folded once, then kept).
    pub filter_first_ms: f64,
    /// Filter view after another group or slice is chosen: median and slowest.
    pub filter_median_ms: f64,
    pub filter_max_ms: f64,
    /// Attention view after the pruning changes (the pruned model built, one forward).
    pub attention_new_plan_median_ms: f64,
    pub attention_new_plan_max_ms: f64,
    /// Attention view on another slice (both models run).
    pub attention_new_slice_median_ms: f64,
    pub attention_new_slice_max_ms: f64,
    pub runs: usize,
    pub case: String,
}

/// Opens the default case in a worker of its own and times `runs` requests of each kind.
pub fn time_views(runs: usize) -> Result<ViewTimings> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let handle = worker::spawn(|| {});
    let _ = handle.requests.send(Request::OpenDefault);
    let mut groups = Vec::new();
    let mut case = None;
    wait_for(&handle, |r| {
        match r {
            Response::ModelReady(m) => groups = m.groups.iter().map(|g| g.name.clone()).collect(),
            Response::CaseLoaded(c) => case = Some((c.id.clone(), c.dims)),
            _ => {}
        }
        matches!(r, Response::DensePrediction { .. })
    })?;
    let (case_id, dims) = case.ok_or_else(|| anyhow!("the default case did not open"))?;
    let middle = dims[2] / 2;
    let mut next_id = 0;
    let mut time = |group: Option<&str>, attention: bool, slice: usize, ratio: f64| {
        next_id += 1;
        let mut plan = PrunePlan::dense(PruneMethod::Structured(StructuredMethod::L2));
        plan.global_ratio = Some(ratio);
        let request = MapsRequest {
            id: next_id,
            preview: PreviewRequest {
                id: next_id,
                plan,
                slice_idx: slice,
                fine_tuned: false,
                precision: crate::precision::Precision::Fp32,
            },
            group: group.map(str::to_string),
            attention,
        };
        let started = Instant::now();
        let _ = handle.requests.send(Request::Maps(request));
        wait_for(
            &handle,
            |r| matches!(r, Response::Maps(m) if m.id == next_id),
        )?;
        Ok::<f64, anyhow::Error>(started.elapsed().as_secs_f64() * 1e3)
    };
    let filter_first_ms = time(groups.first().map(String::as_str), false, middle, 0.0)?;
    let mut filter = Vec::new();
    for i in 0..runs {
        let group = &groups[(i * 7 + 3) % groups.len()];
        filter.push(time(Some(group), false, middle + i % 3, 0.0)?);
    }
    // The dense gates of this slice are computed once and kept.
    time(None, true, middle, 0.05)?;
    let mut new_plan = Vec::new();
    for i in 0..runs {
        new_plan.push(time(None, true, middle, 0.1 + 0.05 * i as f64)?);
    }
    let mut new_slice = Vec::new();
    for i in 0..runs {
        new_slice.push(time(
            None,
            true,
            middle + 1 + i,
            0.1 + 0.05 * (runs - 1) as f64,
        )?);
    }
    let (filter_median_ms, filter_max_ms) = median_max(&mut filter);
    let (attention_new_plan_median_ms, attention_new_plan_max_ms) = median_max(&mut new_plan);
    let (attention_new_slice_median_ms, attention_new_slice_max_ms) = median_max(&mut new_slice);
    Ok(ViewTimings {
        filter_first_ms,
        filter_median_ms,
        filter_max_ms,
        attention_new_plan_median_ms,
        attention_new_plan_max_ms,
        attention_new_slice_median_ms,
        attention_new_slice_max_ms,
        runs,
        case: case_id,
    })
}

/// Reads answers until `done` holds for one; an error answer ends the wait with it.
fn wait_for(handle: &WorkerHandle, mut done: impl FnMut(&Response) -> bool) -> Result<()> {
    loop {
        let response = handle
            .responses
            .recv_timeout(ANSWER_TIMEOUT)
            .map_err(|_| anyhow!("the worker did not answer"))?;
        if let Response::Error(e) = &response {
            bail!("the worker failed: {e}");
        }
        if done(&response) {
            return Ok(());
        }
    }
}

fn median_max(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[values.len() / 2], values[values.len() - 1])
}

/// The timings as a table.
pub fn render_views(t: &ViewTimings) -> String {
    let row = |what: &str, median: f64, max: f64| {
        vec![
            what.to_string(),
            format!("{median:.0} ms"),
            format!("{max:.0} ms"),
        ]
    };
    let rows = vec![
        vec![
            "filter view, first".to_string(),
            format!("{:.0} ms", t.filter_first_ms),
            "-".into(),
        ],
        row(
            "filter view, another group or slice",
            t.filter_median_ms,
            t.filter_max_ms,
        ),
        row(
            "attention view, another pruning",
            t.attention_new_plan_median_ms,
            t.attention_new_plan_max_ms,
        ),
        row(
            "attention view, another slice",
            t.attention_new_slice_median_ms,
            t.attention_new_slice_max_ms,
        ),
    ];
    format!(
        "views on {} ({} runs each, send to answer through the app's worker)\n{}",
        t.case,
        t.runs,
        crate::report::table(&["", "median", "slowest"], &rows)
    )
}
