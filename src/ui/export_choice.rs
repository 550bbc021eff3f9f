//! The format and precision a model is exported in, as two combo boxes: the Fine-tune and
//! export panel offers them for the previewed model, the plan tree for its selected node.

use eframe::egui;

use crate::export::{ModelFormat, Precision};

/// What an "Export model…" button writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportChoice {
    pub format: ModelFormat,
    pub precision: Precision,
}

impl ExportChoice {
    /// The two combo boxes; `salt` keeps two copies of the widget apart.
    pub fn ui(&mut self, ui: &mut egui::Ui, salt: &str) {
        egui::ComboBox::from_id_salt((salt, "format"))
            .selected_text(self.format.label())
            .show_ui(ui, |ui| {
                for format in ModelFormat::ALL {
                    ui.selectable_value(&mut self.format, format, format.label())
                        .on_hover_text(format_help(format));
                }
            })
            .response
            .on_hover_text("File format of the exported model");
        if !self.format.supports(self.precision) {
            self.precision = Precision::Fp32;
        }
        egui::ComboBox::from_id_salt((salt, "precision"))
            .selected_text(self.precision.name())
            .show_ui(ui, |ui| {
                for precision in Precision::ALL {
                    if self.format.supports(precision) {
                        ui.selectable_value(&mut self.precision, precision, precision.name());
                    }
                }
            })
            .response
            .on_hover_text(
                "fp16: half the file (ONNX computes in half); int8 (ONNX): under a third, \
                 weights and activations as 8-bit integers (activations calibrated on \
                 generated tumour slices), run as integer convolutions by ONNX Runtime",
            );
    }
}

/// What a format is for, in a line.
fn format_help(format: ModelFormat) -> &'static str {
    match format {
        ModelFormat::Checkpoint => "Opens again here and in every command (config, masks, history)",
        ModelFormat::Onnx => {
            "For deployment runtimes such as ONNX Runtime: batch norms folded, opset 17"
        }
        ModelFormat::PyTorch => {
            "Reference key names; tools/raagr2_torch.py loads it with strict=True"
        }
    }
}
