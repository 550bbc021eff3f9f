//! The one-page case report a clinician attaches to a discussion: the largest tumour
//! cross-section in each plane for ground truth, dense and pruned segmentation (drawn by the
//! viewer's renderer), the volume table, Dice per region, the lesion list with lost lesions in
//! red, and which models made it (name, parameters, plan). The CLI's `report` and the app's
//! "Report…" both write it.

use std::path::Path;

use crate::data::dataset::PreparedCase;
use crate::metrics::findings::{
    Lesion, MIN_LISTED_EXTRA_ML, Segmentations, lesion_status, lesions,
};
use crate::metrics::{Region, SubRegionScores, region_dice};
use crate::montage::display_window;
use crate::plot::{Page, TextTable, Tile, write_page_png};
use crate::render::{OverlayStyle, SliceAxis, render_slice};

/// Lesion rows listed at most (the rest are counted in a last row).
const MAX_LESION_ROWS: usize = 14;

/// One model of the report: what it is called and how big it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportModel {
    pub name: String,
    pub params: usize,
    /// Its pruning, in words ("dense" for the unpruned model).
    pub plan: String,
}

/// What the report shows: the case, the dense model's segmentation and optionally a pruned
/// one's (sub-region codes on the case's grid).
pub struct CaseReport<'a> {
    pub case: &'a PreparedCase,
    pub dense: &'a [u8],
    pub dense_model: ReportModel,
    pub pruned: Option<(&'a [u8], ReportModel)>,
}

impl CaseReport<'_> {
    fn maps(&self) -> Segmentations<'_> {
        Segmentations {
            truth: self.case.regions.as_deref(),
            dense: Some(self.dense),
            pruned: self.pruned.as_ref().map(|(codes, _)| *codes),
        }
    }

    /// The report as a page: tiles and tables.
    pub fn page(&self) -> (Vec<Tile>, Vec<String>, Vec<TextTable>) {
        let maps = self.maps();
        let grid = self.case.grid();
        let rows: Vec<(&str, &[u8])> = [
            ("truth", maps.truth),
            ("dense", maps.dense),
            ("pruned", maps.pruned),
        ]
        .into_iter()
        .filter_map(|(name, codes)| codes.map(|c| (name, c)))
        .collect();
        // The planes through the most tumour of the reference (truth, else dense).
        let reference = maps.truth.unwrap_or(self.dense);
        let window = display_window(&self.case.modalities[3]);
        let style = OverlayStyle::default();
        let mut tiles = Vec::new();
        for (name, codes) in &rows {
            for axis in SliceAxis::ALL {
                let slice = largest_cross_section(reference, self.case.dims, axis);
                let (size, rgba) = render_slice(
                    &self.case.modalities[3],
                    Some(codes),
                    self.case.dims,
                    axis,
                    slice,
                    window,
                    &style,
                );
                tiles.push(Tile {
                    caption: format!("{name}: {} {slice}", axis.name().to_lowercase()),
                    size,
                    rgba,
                });
            }
        }
        let [sx, sy, sz] = grid.spacing_mm;
        let [nx, ny, nz] = grid.dims;
        let mut lines = vec![
            format!(
                "grid {nx} x {ny} x {nz}, voxels {sx:.2} x {sy:.2} x {sz:.2} mm; FLAIR with \
                 NCR/NET (red), ED (green), ET (yellow)"
            ),
            model_line("dense", &self.dense_model),
        ];
        if let Some((_, model)) = &self.pruned {
            lines.push(model_line("pruned", model));
        }
        let mut tables = vec![self.volume_table(&maps)];
        if let Some(dice) = self.dice_table(&maps) {
            tables.push(dice);
        }
        tables.push(self.lesion_table(&maps));
        (tiles, lines, tables)
    }

    /// Writes the report to `path` as a PNG (atomically).
    pub fn write_png(&self, path: &Path) -> anyhow::Result<()> {
        let (tiles, lines, tables) = self.page();
        let page = Page {
            title: format!(
                "Case {}: tumour volumes and lesions, dense vs pruned",
                self.case.id
            ),
            lines,
            tiles: &tiles,
            columns: 3,
            tables,
        };
        write_page_png(path, &page)
    }

    fn volume_table(&self, maps: &Segmentations<'_>) -> TextTable {
        let volumes = maps.volumes(&self.case.grid());
        let cell = |v: Option<SubRegionScores>, r: Region| {
            v.map_or("-".to_string(), |v| format!("{:.2}", v.get(r)))
        };
        let rows = [Region::Ncr, Region::Ed, Region::Et, Region::Tc, Region::Wt]
            .map(|r| {
                let (d, p) = (volumes.dense_ml, volumes.pruned_ml);
                let difference = match (d, p) {
                    (Some(d), Some(p)) => {
                        let (d, p) = (d.get(r), p.get(r));
                        let percent = if d > 0.0 {
                            format!("{:+.1} %", 100.0 * (p - d) / d)
                        } else {
                            "-".into()
                        };
                        format!("{:+.2} ({percent})", p - d)
                    }
                    _ => "-".into(),
                };
                vec![
                    region_label(r).to_string(),
                    cell(volumes.truth_ml, r),
                    cell(d, r),
                    cell(p, r),
                    difference,
                ]
            })
            .to_vec();
        TextTable {
            title: "Volume (ml)".into(),
            headers: ["region", "truth", "dense", "pruned", "pruned - dense"]
                .map(String::from)
                .to_vec(),
            flagged: vec![false; rows.len()],
            rows,
        }
    }

    fn dice_table(&self, maps: &Segmentations<'_>) -> Option<TextTable> {
        let truth = maps.truth?;
        let dense = region_dice(self.dense, truth);
        let pruned = maps.pruned.map(|p| region_dice(p, truth));
        let rows = [Region::Wt, Region::Tc, Region::Et]
            .iter()
            .enumerate()
            .map(|(i, r)| {
                vec![
                    r.name().to_string(),
                    format!("{:.3}", dense[i]),
                    pruned.map_or("-".into(), |p| format!("{:.3}", p[i])),
                    pruned.map_or("-".into(), |p| format!("{:+.3}", p[i] - dense[i])),
                ]
            })
            .collect::<Vec<_>>();
        Some(TextTable {
            title: "Dice against the ground truth (whole case)".into(),
            headers: ["region", "dense", "pruned", "pruned - dense"]
                .map(String::from)
                .to_vec(),
            flagged: vec![false; rows.len()],
            rows,
        })
    }

    fn lesion_table(&self, maps: &Segmentations<'_>) -> TextTable {
        let grid = self.case.grid();
        let found: Vec<Lesion> = [Region::Wt, Region::Tc, Region::Et]
            .into_iter()
            .flat_map(|r| lesions(maps, &grid, r))
            .collect();
        let specks = found.iter().filter(|l| !l.worth_listing()).count();
        let all: Vec<Lesion> = found.into_iter().filter(Lesion::worth_listing).collect();
        let ml = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
        let mut rows: Vec<Vec<String>> = all
            .iter()
            .take(MAX_LESION_ROWS)
            .map(|l| {
                let [x, y, z] = l.centroid_mm;
                vec![
                    l.region.name().to_string(),
                    l.origin.name().to_string(),
                    format!("{:.3}", l.volume_ml),
                    format!("{x:.0}, {y:.0}, {z:.0}"),
                    ml(l.dense_ml),
                    ml(l.pruned_ml),
                    lesion_status(l).to_string(),
                ]
            })
            .collect();
        let mut flagged: Vec<bool> = all
            .iter()
            .take(MAX_LESION_ROWS)
            .map(Lesion::lost_by_pruning)
            .collect();
        if all.len() > MAX_LESION_ROWS {
            rows.push(vec![format!(
                "... and {} smaller",
                all.len() - MAX_LESION_ROWS
            )]);
            flagged.push(false);
        }
        if specks > 0 {
            rows.push(vec![format!(
                "{specks} component(s) the models add under {MIN_LISTED_EXTRA_ML} ml not listed"
            )]);
            flagged.push(false);
        }
        let lost = all.iter().filter(|l| l.lost_by_pruning()).count();
        TextTable {
            title: format!(
                "Lesions (26-connected components; centre in scanner mm){}",
                if lost > 0 {
                    format!(": the pruned model lost {lost}")
                } else {
                    String::new()
                }
            ),
            headers: [
                "region",
                "in",
                "ml",
                "centre (mm)",
                "dense ml",
                "pruned ml",
                "",
            ]
            .map(String::from)
            .to_vec(),
            rows,
            flagged,
        }
    }
}

fn model_line(role: &str, model: &ReportModel) -> String {
    format!(
        "{role} model: {} ({} parameters; {})",
        model.name, model.params, model.plan
    )
}

/// The name of a region in tables (NCR as BraTS writes it).
pub fn region_label(region: Region) -> &'static str {
    match region {
        Region::Ncr => "NCR/NET",
        other => other.name(),
    }
}

/// The slice of `axis` with the most tumour voxels in `codes` (the middle one when there is
/// none).
pub fn largest_cross_section(codes: &[u8], dims: [usize; 3], axis: SliceAxis) -> usize {
    let mut counts = vec![0usize; axis.slices(dims)];
    for (i, code) in codes.iter().enumerate() {
        if *code != 0 {
            let voxel = [
                i % dims[0],
                (i / dims[0]) % dims[1],
                i / (dims[0] * dims[1]),
            ];
            counts[axis.slice_of(voxel)] += 1;
        }
    }
    let middle = counts.len() / 2;
    (0..counts.len())
        .max_by_key(|&s| (counts[s], usize::MAX - s.abs_diff(middle)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_cross_section_is_found_in_every_plane() {
        let dims = [6, 5, 4];
        let mut codes = vec![0u8; 120];
        // A bar along x at y = 3, z = 1, and one more voxel at x = 2, y = 0, z = 1.
        for x in 0..6 {
            codes[x + 6 * (3 + 5)] = 2;
        }
        codes[2 + 6 * 5] = 1;
        assert_eq!(largest_cross_section(&codes, dims, SliceAxis::Axial), 1);
        assert_eq!(largest_cross_section(&codes, dims, SliceAxis::Coronal), 3);
        assert_eq!(largest_cross_section(&codes, dims, SliceAxis::Sagittal), 2);
        assert_eq!(largest_cross_section(&[0; 120], dims, SliceAxis::Axial), 2);
    }
}
