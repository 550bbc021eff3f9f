//! The 3-D tab: the dense and the pruned segmentation side by side, ray-cast on the GPU through
//! egui's wgpu paint callback (the label maps and FLAIR as 3-D textures, uploaded once per
//! change, never per frame), tumour surfaces lit from the eye inside a translucent brain, the
//! current slice plane as a tinted sheet; dragging rotates both views, the wheel zooms. Where the
//! app's renderer is not wgpu it says so instead.

use std::sync::Arc;

use eframe::egui;
use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, RenderState};
use eframe::wgpu;

use super::command::AppView;
use crate::render::SliceAxis;
use crate::worker::CaseView;

/// The 3-D tab's camera and whether a renderer can draw it.
pub struct VolumeView {
    /// Rotation about the superior axis and elevation above the axial plane (radians).
    pub yaw: f32,
    pub pitch: f32,
    /// 1 frames the whole volume; larger is closer.
    pub zoom: f32,
    /// Why 3-D cannot be drawn here (`None`: the wgpu renderer took the resources).
    pub unavailable: Option<String>,
}

impl VolumeView {
    /// The view for an app whose renderer is `render_state` (`None`: not wgpu).
    pub fn new(render_state: Option<&RenderState>) -> VolumeView {
        let unavailable = match render_state {
            Some(state) => {
                let resources = VolumeResources::new(&state.device, state.target_format);
                state.renderer.write().callback_resources.insert(resources);
                None
            }
            None => Some(
                "The 3-D view needs the app's wgpu renderer, which this window does not use \
                 (the slice views show everything it would)."
                    .into(),
            ),
        };
        VolumeView {
            unavailable,
            ..VolumeView::default()
        }
    }

    /// Emits the paint callbacks even where no renderer takes them: what the benchmark of the
    /// UI thread's work per frame measures under kittest.
    pub fn draw_without_renderer(&mut self) {
        self.unavailable = None;
    }

    /// The tab: both views, then how to read them.
    pub(super) fn ui(&mut self, ui: &mut egui::Ui, view: &AppView<'_>) {
        let Some(case) = view.case else {
            ui.centered_and_justified(|ui| ui.spinner());
            return;
        };
        ui.horizontal(|ui| {
            ui.label("Drag to rotate, scroll to zoom.");
            if ui.button("Reset view").clicked() {
                let unavailable = self.unavailable.take();
                *self = VolumeView {
                    unavailable,
                    ..VolumeView::default()
                };
            }
        });
        if let Some(reason) = &self.unavailable {
            ui.label(reason.as_str());
            return;
        }
        let volumes = [("Dense", view.dense_volume), ("Pruned", view.pruned_volume)];
        let width = (ui.available_width() / 2.0 - 8.0).max(160.0);
        let height = (ui.available_height() - 60.0).clamp(160.0, width * 1.1);
        ui.horizontal(|ui| {
            for (slot, (title, codes)) in volumes.into_iter().enumerate() {
                ui.vertical(|ui| {
                    ui.strong(title);
                    let (rect, response) =
                        ui.allocate_exact_size(egui::vec2(width, height), egui::Sense::drag());
                    self.steer(ui, &response);
                    match codes {
                        Some(codes) => {
                            let callback = VolumeCallback {
                                slot,
                                case: Arc::clone(case),
                                codes: Arc::clone(codes),
                                key: (case.id.clone(), view.codes_generation),
                                uniforms: self.uniforms(case, view, rect.aspect_ratio()),
                            };
                            ui.painter()
                                .add(egui_wgpu::Callback::new_paint_callback(rect, callback));
                        }
                        None => {
                            ui.painter()
                                .rect_filled(rect, 0.0, egui::Color32::from_gray(20));
                            ui.painter().text(
                                rect.center(),
                                egui::Align2::CENTER_CENTER,
                                "waiting for the segmentation…",
                                egui::FontId::proportional(14.0),
                                egui::Color32::GRAY,
                            );
                        }
                    }
                });
            }
        });
        let pruned_note = if view.pruned_whole_case {
            ""
        } else {
            " The pruned view shows the previewed slice until the whole case is segmented."
        };
        let cursor_note = if view.cursor.is_some() {
            " (fainter sheets: the other planes through the lesion clicked)"
        } else {
            ""
        };
        ui.label(format!(
            "Surfaces: NCR/NET, ED and ET in the overlay's colours (hidden regions left out); grey \
             haze: the brain; yellow sheet: the {} slice {}{cursor_note}.{pruned_note}",
            view.settings.axis.name().to_lowercase(),
            view.slice_idx
        ));
    }

    /// Drag rotates, the wheel zooms (while the pointer is over a view).
    fn steer(&mut self, ui: &egui::Ui, response: &egui::Response) {
        let drag = response.drag_delta();
        self.rotate(drag.x, drag.y);
        if response.hovered() {
            let wheel = ui.input(|i| i.smooth_scroll_delta.y);
            self.zoom = (self.zoom * (1.0 + wheel * 0.002)).clamp(0.5, 6.0);
        }
    }

    /// Turns the camera by a drag of (dx, dy) points.
    pub fn rotate(&mut self, dx: f32, dy: f32) {
        self.yaw = (self.yaw - dx * 0.01).rem_euclid(std::f32::consts::TAU);
        self.pitch = (self.pitch + dy * 0.01).clamp(-1.45, 1.45);
    }

    /// The shader's inputs for `case` seen by this camera in a view of `aspect` (width/height).
    fn uniforms(&self, case: &CaseView, view: &AppView<'_>, aspect: f32) -> Uniforms {
        let half: [f32; 3] =
            std::array::from_fn(|a| case.dims[a] as f32 * case.spacing_mm[a] / 2.0);
        let camera = Camera::orbit(self.yaw, self.pitch, self.zoom, half, aspect);
        let overlay = &view.settings.overlay;
        let mut colours = [[0.0; 4]; 4];
        for r in 0..3 {
            let [red, green, blue] = overlay.colours[r].map(|c| c as f32 / 255.0);
            colours[r + 1] = [red, green, blue, overlay.visible[r] as u8 as f32];
        }
        let axis = match view.settings.axis {
            SliceAxis::Sagittal => 0.0,
            SliceAxis::Coronal => 1.0,
            SliceAxis::Axial => 2.0,
        };
        let step_mm = case
            .spacing_mm
            .iter()
            .copied()
            .fold(f32::INFINITY, f32::min)
            .max(0.25);
        Uniforms {
            eye: extend(camera.eye),
            right: extend(camera.right),
            up: extend(camera.up),
            forward: extend(camera.forward),
            half_extent: extend(half),
            dims: [
                case.dims[0] as f32,
                case.dims[1] as f32,
                case.dims[2] as f32,
                step_mm,
            ],
            plane: [axis, view.slice_idx as f32, 0.0, 0.0],
            cursor: match view.cursor {
                Some([x, y, z]) => [x as f32, y as f32, z as f32, 1.0],
                None => [0.0; 4],
            },
            colours,
        }
    }
}

impl Default for VolumeView {
    fn default() -> Self {
        VolumeView {
            yaw: 0.6,
            pitch: 0.35,
            zoom: 1.6,
            unavailable: None,
        }
    }
}

fn extend([x, y, z]: [f32; 3]) -> [f32; 4] {
    [x, y, z, 0.0]
}

/// An orbit camera around the volume's centre: where the eye is and the ray basis per pixel
/// (right and up scaled so that NDC (x, y) maps to `forward + x * right + y * up`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    pub eye: [f32; 3],
    pub right: [f32; 3],
    pub up: [f32; 3],
    pub forward: [f32; 3],
}

/// Vertical field of view (radians).
const FIELD_OF_VIEW: f32 = 0.6;

impl Camera {
    /// Looking at the centre from `yaw` about the superior (z) axis and `pitch` above the axial
    /// plane, far enough to frame a box of half extents `half` (mm), superior up on screen.
    pub fn orbit(yaw: f32, pitch: f32, zoom: f32, half: [f32; 3], aspect: f32) -> Camera {
        let radius = half.iter().map(|h| h * h).sum::<f32>().sqrt();
        let distance = radius / (FIELD_OF_VIEW / 2.0).sin() / zoom.max(0.1);
        let towards_eye = [
            pitch.cos() * yaw.sin(),
            -pitch.cos() * yaw.cos(),
            pitch.sin(),
        ];
        let eye = towards_eye.map(|c| c * distance);
        let forward = towards_eye.map(|c| -c);
        let right = normalize(cross(forward, [0.0, 0.0, 1.0]));
        let up = cross(right, forward);
        let tan = (FIELD_OF_VIEW / 2.0).tan();
        Camera {
            eye,
            right: right.map(|c| c * tan * aspect),
            up: up.map(|c| c * tan),
            forward,
        }
    }
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalize(v: [f32; 3]) -> [f32; 3] {
    let length = v.iter().map(|c| c * c).sum::<f32>().sqrt().max(1e-12);
    v.map(|c| c / length)
}

/// The shader's uniform block (vec4-aligned, as WGSL lays it out).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniforms {
    eye: [f32; 4],
    right: [f32; 4],
    up: [f32; 4],
    forward: [f32; 4],
    /// Half the volume's size in mm.
    half_extent: [f32; 4],
    /// Voxels along x, y, z; w: the ray's step in mm.
    dims: [f32; 4],
    /// x: the shown plane's axis (0 x, 1 y, 2 z); y: its slice.
    plane: [f32; 4],
    /// The cursor's voxel (a lesion clicked), w 1 when set: the other two planes through it.
    cursor: [f32; 4],
    /// Per sub-region code (1 NCR/NET, 2 ED, 3 ET): colour, alpha 1 when shown.
    colours: [[f32; 4]; 4],
}

/// One view's draw: what it shows and how.
struct VolumeCallback {
    /// 0 dense, 1 pruned: which textures it uses.
    slot: usize,
    case: Arc<CaseView>,
    codes: Arc<Vec<u8>>,
    /// Changes whenever the case or a segmentation changes (the textures are then uploaded).
    key: (String, u64),
    uniforms: Uniforms,
}

impl CallbackTrait for VolumeCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(resources) = resources.get_mut::<VolumeResources>() {
            resources.prepare(device, queue, self);
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let Some(resources) = resources.get::<VolumeResources>() else {
            return;
        };
        if let Some(slot) = &resources.slots[self.slot] {
            render_pass.set_pipeline(&resources.pipeline);
            render_pass.set_bind_group(0, &slot.bind_group, &[]);
            render_pass.draw(0..3, 0..1);
        }
    }
}

/// The GPU side, kept in the renderer's callback resources: the pipeline, FLAIR of the open
/// case, and per view its label texture, uniform buffer and bind group.
struct VolumeResources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    flair: Option<(String, wgpu::TextureView)>,
    slots: [Option<Slot>; 2],
}

struct Slot {
    key: (String, u64),
    uniforms: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

impl VolumeResources {
    fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> VolumeResources {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("volume ray-cast"),
            source: wgpu::ShaderSource::Wgsl(include_str!("volume_view.wgsl").into()),
        });
        let texture_entry = |binding, sample_type| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type,
                view_dimension: wgpu::TextureViewDimension::D3,
                multisampled: false,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("volume"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                texture_entry(1, wgpu::TextureSampleType::Uint),
                texture_entry(2, wgpu::TextureSampleType::Float { filterable: false }),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("volume"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("volume ray-cast"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        VolumeResources {
            pipeline,
            layout,
            flair: None,
            slots: [None, None],
        }
    }

    /// Uploads what changed (FLAIR once per case, labels once per segmentation) and the
    /// camera (every frame: a few hundred bytes).
    fn prepare(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, view: &VolumeCallback) {
        let case = &view.case;
        if self.flair.as_ref().is_none_or(|(id, _)| *id != case.id) {
            let flair = upload_3d(
                device,
                queue,
                case.dims,
                wgpu::TextureFormat::R32Float,
                bytemuck::cast_slice(&case.modalities[3]),
            );
            self.flair = Some((case.id.clone(), flair));
            // The bind groups hold the old FLAIR.
            self.slots = [None, None];
        }
        let Some((_, flair)) = &self.flair else {
            return;
        };
        let stale = self.slots[view.slot]
            .as_ref()
            .is_none_or(|slot| slot.key != view.key);
        if stale {
            let labels = upload_3d(
                device,
                queue,
                case.dims,
                wgpu::TextureFormat::R8Uint,
                &view.codes,
            );
            let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("volume camera"),
                size: std::mem::size_of::<Uniforms>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("volume"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: uniforms.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::TextureView(&labels),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: wgpu::BindingResource::TextureView(flair),
                    },
                ],
            });
            self.slots[view.slot] = Some(Slot {
                key: view.key.clone(),
                uniforms,
                bind_group,
            });
        }
        if let Some(slot) = &self.slots[view.slot] {
            queue.write_buffer(&slot.uniforms, 0, bytemuck::bytes_of(&view.uniforms));
        }
    }
}

/// A 3-D texture of `dims` holding `bytes` (x fastest), as a view.
fn upload_3d(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    dims: [usize; 3],
    format: wgpu::TextureFormat,
    bytes: &[u8],
) -> wgpu::TextureView {
    let size = wgpu::Extent3d {
        width: dims[0] as u32,
        height: dims[1] as u32,
        depth_or_array_layers: dims[2] as u32,
    };
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("volume"),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D3,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    let texel = bytes.len() / dims.iter().product::<usize>().max(1);
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture: &texture,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some((dims[0] * texel) as u32),
            rows_per_image: Some(dims[1] as u32),
        },
        size,
    );
    texture.create_view(&wgpu::TextureViewDescriptor::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
        a.iter().zip(&b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn the_orbit_camera_looks_at_the_centre_with_superior_up_and_frames_the_box() {
        let half = [120.0, 120.0, 77.5];
        let camera = Camera::orbit(0.0, 0.0, 1.0, half, 2.0);
        // From the front (-y), looking along +y, z up on screen, x to the right.
        assert!(camera.eye[1] < 0.0 && camera.eye[0].abs() < 1e-3 && camera.eye[2].abs() < 1e-3);
        assert!((camera.forward[1] - 1.0).abs() < 1e-6);
        assert!(camera.up[2] > 0.0 && camera.right[0].abs() > 0.0);
        assert!(dot(camera.right, camera.up).abs() < 1e-6);
        // Every corner of the box projects inside the view.
        for corner in 0..8 {
            let p: [f32; 3] = std::array::from_fn(|a| {
                if corner >> a & 1 == 1 {
                    half[a]
                } else {
                    -half[a]
                }
            });
            let d: [f32; 3] = std::array::from_fn(|a| p[a] - camera.eye[a]);
            let depth = dot(d, camera.forward);
            let length = |v: [f32; 3]| dot(v, v);
            let x = dot(d, camera.right) / length(camera.right) / depth;
            let y = dot(d, camera.up) / length(camera.up) / depth;
            assert!(
                x.abs() <= 1.0 && y.abs() <= 1.0,
                "corner {corner}: ({x}, {y})"
            );
        }
        // A quarter turn looks from the patient's side instead.
        let side = Camera::orbit(std::f32::consts::FRAC_PI_2, 0.0, 1.0, half, 1.0);
        assert!(side.eye[0] > 0.0 && side.eye[1].abs() < 1e-3);
    }

    #[test]
    fn dragging_turns_and_tilts_within_limits() {
        let mut view = VolumeView::default();
        let (yaw, pitch) = (view.yaw, view.pitch);
        view.rotate(50.0, 0.0);
        assert!((view.yaw - (yaw - 0.5)).abs() < 1e-6);
        view.rotate(0.0, 10_000.0);
        assert_eq!(view.pitch, 1.45);
        assert_ne!(pitch, view.pitch);
        assert_eq!(std::mem::size_of::<Uniforms>(), 192);
    }
}
