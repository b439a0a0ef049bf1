"""YAMNet's class scores by the reference pipeline: YAMNet's own front end written in
numpy (float64, TensorFlow's `linear_to_mel_weight_matrix`) and the 8-bit model file run
by onnxruntime's Python API, for the Rust tagger's test to compare with its own.

    yamnet_reference.py MODEL_DIR SAMPLES_F32LE

SAMPLES_F32LE holds 16 kHz mono samples as little-endian float32 (the decode the Rust
test made, so both sides read the same samples). Prints JSON: {"patches": [[u8 score of
each of the 521 classes], ...]}, the model's quantised class scores per 0.96 s patch.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

RATE = 16000
FRAME = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512
MELS = 64
PATCH_FRAMES = 96
PATCH_HOP_FRAMES = 48


def mel_matrix():
    """TensorFlow's linear_to_mel_weight_matrix(64, 257, 16000, 125, 7500)."""
    bins = FFT // 2 + 1

    def hz_to_mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    edges = np.linspace(hz_to_mel(125.0), hz_to_mel(7500.0), MELS + 2)
    mel = hz_to_mel(np.linspace(0.0, RATE / 2.0, bins))[1:]
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (mel[:, None] - lower) / (center - lower)
    falling = (upper - mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.vstack([np.zeros((1, MELS)), weights])


def log_mel(samples):
    frames = 1 + (len(samples) - FRAME) // HOP
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(FRAME) / FRAME)  # periodic Hann
    index = np.arange(FRAME)[None, :] + HOP * np.arange(frames)[:, None]
    spectrum = np.abs(np.fft.rfft(samples[index] * window, n=FFT))
    return np.log(spectrum @ mel_matrix() + 0.001)


def main():
    model_dir, samples_path = sys.argv[1], sys.argv[2]
    samples = np.fromfile(samples_path, dtype="<f4").astype(np.float64)
    patch_samples = (PATCH_FRAMES - 1) * HOP + FRAME
    patch_hop = PATCH_HOP_FRAMES * HOP
    # As YAMNet pads: at least one patch, and the last one reaching the end.
    patches = 1 + -(-max(0, len(samples) - patch_samples) // patch_hop)
    padded = np.zeros((patches - 1) * patch_hop + patch_samples)
    padded[: len(samples)] = samples
    features = log_mel(padded)

    model = onnx.load(f"{model_dir}/model.onnx", load_external_data=False)
    scalars = {i.name: float(numpy_helper.to_array(i)) for i in model.graph.initializer
               if i.name in ("audio_scale", "audio_zero_point")}
    scale, zero = scalars["audio_scale"], scalars["audio_zero_point"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(f"{model_dir}/model.onnx", options,
                                   providers=["CPUExecutionProvider"])
    out = []
    for p in range(patches):
        patch = features[p * PATCH_HOP_FRAMES: p * PATCH_HOP_FRAMES + PATCH_FRAMES]
        quantised = np.clip(np.round(patch / scale + zero), 0, 255).astype(np.uint8)
        (scores,) = session.run(["class_scores"], {"audio": quantised[None, None]})
        out.append([int(v) for v in scores.reshape(-1)])
    json.dump({"patches": out}, sys.stdout)


if __name__ == "__main__":
    main()
