"""Writes the NIfTI-2 test fixtures with nibabel: a 6x5x4 grid whose voxel (x, y, z) holds
v = x + 10*y + 100*z, as little-endian int16 storing v with scl_slope 2 and scl_inter 7 (so
it reads as 2v + 7; .nii.gz, rotated sform) and as big-endian float32 v (.nii, qform only).
Run: python3 tools/nifti2_fixtures.py tests/fixtures"""
import gzip
import struct
import sys

import nibabel as nib
import numpy as np

out = sys.argv[1]
x, y, z = np.meshgrid(np.arange(6), np.arange(5), np.arange(4), indexing="ij")
values = (x + 10 * y + 100 * z).astype(np.float64)

# int16 v, then scl_slope (offset 176) and scl_inter (offset 184) patched to 2 and 7.
affine = np.array([[0, -1.2, 0, 30.0], [1.2, 0, 0, -20.0], [0, 0, 2.5, 5.0], [0, 0, 0, 1]])
img = nib.Nifti2Image(values.astype(np.int16), affine)
img.set_sform(affine, code=2)
img.set_qform(affine, code=1)
raw = bytearray(img.to_bytes())
raw[176:192] = struct.pack("<dd", 2.0, 7.0)
with gzip.open(f"{out}/nifti2_i16_scaled.nii.gz", "wb") as f:
    f.write(bytes(raw))

# Big-endian float32, qform only (sform code 0), pixdim 1.5.
affine2 = np.diag([-1.5, -1.5, 1.5, 1.0])
affine2[:3, 3] = [10.0, 20.0, -30.0]
hdr = nib.Nifti2Header(endianness=">")
img2 = nib.Nifti2Image(values.astype(np.float32), affine2, header=hdr)
img2.header.set_data_dtype(">f4")
img2.set_qform(affine2, code=1)
img2.set_sform(None, code=0)
nib.save(img2, f"{out}/nifti2_f32_be.nii")

for name, want in [("nifti2_i16_scaled.nii.gz", 2 * values + 7), ("nifti2_f32_be.nii", values)]:
    back = nib.load(f"{out}/{name}")
    assert back.header.sizeof_hdr == 540, name
    assert np.allclose(back.get_fdata(), want), name
    print(name, back.header.endianness, back.get_data_dtype(), "\n", back.affine)
