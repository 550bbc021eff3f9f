// Ray-casts a label map (sub-region codes) inside a translucent brain (FLAIR non-zero), with
// the shown slice plane as a tinted sheet. One full-view triangle; each pixel marches its ray
// through the volume's box (centred at the origin, in mm) until it meets a shown region.

struct Uniforms {
    eye: vec4<f32>,
    right: vec4<f32>,
    up: vec4<f32>,
    forward: vec4<f32>,
    half_extent: vec4<f32>,
    // xyz: voxels per axis; w: the ray's step in mm.
    dims: vec4<f32>,
    // x: the plane's axis (0, 1, 2); y: its slice.
    plane: vec4<f32>,
    // xyz: the cursor's voxel (a lesion clicked); w: 1 when set (its three planes are shown).
    cursor: vec4<f32>,
    // Per code 1..3: colour; alpha 1 when the region is shown.
    colours: array<vec4<f32>, 4>,
};

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var labels: texture_3d<u32>;
@group(0) @binding(2) var flair: texture_3d<f32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) ndc: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    let uv = vec2<f32>(f32((index << 1u) & 2u), f32(index & 2u));
    let ndc = uv * 2.0 - vec2<f32>(1.0, 1.0);
    var out: VertexOut;
    out.position = vec4<f32>(ndc, 0.0, 1.0);
    out.ndc = ndc;
    return out;
}

// The voxel holding point p (mm from the centre), clamped into the volume.
fn voxel_of(p: vec3<f32>) -> vec3<i32> {
    let v = (p + u.half_extent.xyz) / (2.0 * u.half_extent.xyz) * u.dims.xyz;
    return clamp(vec3<i32>(floor(v)), vec3<i32>(0), vec3<i32>(u.dims.xyz) - vec3<i32>(1));
}

fn shown_code(p: vec3<f32>) -> u32 {
    let code = textureLoad(labels, voxel_of(p), 0).r;
    if (code == 0u || code > 3u || u.colours[code].a < 0.5) {
        return 0u;
    }
    return code;
}

fn occupied(p: vec3<f32>) -> f32 {
    return select(0.0, 1.0, shown_code(p) != 0u);
}

fn in_brain(p: vec3<f32>) -> bool {
    return textureLoad(flair, voxel_of(p), 0).r != 0.0;
}

const BACKGROUND: vec3<f32> = vec3<f32>(0.06, 0.06, 0.08);
const PLANE: vec3<f32> = vec3<f32>(1.0, 0.9, 0.3);

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let dir = normalize(u.forward.xyz + in.ndc.x * u.right.xyz + in.ndc.y * u.up.xyz);
    let origin = u.eye.xyz;
    let inv = 1.0 / dir;
    let t0 = (-u.half_extent.xyz - origin) * inv;
    let t1 = (u.half_extent.xyz - origin) * inv;
    let t_near = max(max(min(t0.x, t1.x), min(t0.y, t1.y)), min(t0.z, t1.z));
    let t_far = min(min(max(t0.x, t1.x), max(t0.y, t1.y)), max(t0.z, t1.z));
    if (t_far <= max(t_near, 0.0)) {
        return vec4<f32>(BACKGROUND, 1.0);
    }
    // Where the ray crosses the shown slice plane and, with a cursor, the planes through it
    // on the other two axes (-1: it does not), with how strongly each is tinted.
    var t_planes = array<f32, 3>(-1.0, -1.0, -1.0);
    var tints = array<f32, 3>(0.0, 0.0, 0.0);
    for (var a = 0u; a < 3u; a++) {
        var slice = -1.0;
        var tint = 0.0;
        if (a == u32(u.plane.x)) {
            slice = u.plane.y;
            tint = 0.22;
        } else if (u.cursor.w > 0.5) {
            slice = u.cursor[a];
            tint = 0.12;
        }
        if (slice < 0.0) {
            continue;
        }
        let voxel_mm = 2.0 * u.half_extent[a] / u.dims[a];
        let plane_mm = (slice + 0.5) * voxel_mm - u.half_extent[a];
        let t = (plane_mm - origin[a]) / dir[a];
        if (t >= t_near && t <= t_far) {
            t_planes[a] = t;
            tints[a] = tint;
        }
    }
    let step = u.dims.w;
    var colour = vec3<f32>(0.0);
    var alpha = 0.0;
    var t = max(t_near, 0.0) + 0.5 * step;
    for (var i = 0; i < 2048; i++) {
        if (t > t_far || alpha > 0.97) {
            break;
        }
        for (var a = 0u; a < 3u; a++) {
            if (t_planes[a] >= 0.0 && t >= t_planes[a]) {
                colour += (1.0 - alpha) * tints[a] * PLANE;
                alpha += (1.0 - alpha) * tints[a];
                t_planes[a] = -1.0;
            }
        }
        let p = origin + dir * t;
        let code = shown_code(p);
        if (code != 0u) {
            // The surface's normal from the occupancy's gradient; lit from the eye.
            let h = step;
            let gradient = vec3<f32>(
                occupied(p + vec3<f32>(h, 0.0, 0.0)) - occupied(p - vec3<f32>(h, 0.0, 0.0)),
                occupied(p + vec3<f32>(0.0, h, 0.0)) - occupied(p - vec3<f32>(0.0, h, 0.0)),
                occupied(p + vec3<f32>(0.0, 0.0, h)) - occupied(p - vec3<f32>(0.0, 0.0, h)),
            );
            var light = 0.75;
            if (dot(gradient, gradient) > 0.0) {
                light = 0.3 + 0.7 * abs(dot(normalize(gradient), dir));
            }
            colour += (1.0 - alpha) * u.colours[code].rgb * light;
            alpha = 1.0;
            break;
        }
        if (in_brain(p)) {
            let a = 0.004 * step;
            colour += (1.0 - alpha) * a * vec3<f32>(0.85, 0.85, 0.9);
            alpha += (1.0 - alpha) * a;
        }
        t += step;
    }
    for (var a = 0u; a < 3u; a++) {
        if (t_planes[a] >= 0.0) {
            colour += (1.0 - alpha) * tints[a] * PLANE;
            alpha += (1.0 - alpha) * tints[a];
        }
    }
    return vec4<f32>(colour + (1.0 - alpha) * BACKGROUND, 1.0);
}
