#!/usr/bin/env bash
# What the tests need beyond Rust, installed only where missing:
# - Debian packages: the dataset and model tests render notes from the TimGM6mb General MIDI
#   SoundFont; the training test draws its loss curve with the DejaVu font; the editor test
#   opens the editor in a window under Xvfb, drawn with Mesa's software OpenGL (EGL/GLX)
#   through the X11 client libraries baseview loads at run time; python3 and pip run the VST3
#   host test. pkg-config is installed in case a dependency's build script looks for it.
# - PyPI: pedalboard (JUCE's VST3 hosting, the third-party host of tests/tests/vst3_host.rs)
#   and numpy.
# As root it installs what is missing; otherwise it lists what is missing, prints the one
# command that installs it and exits with status 1. `cargo xtask test` runs it first.
set -euo pipefail

packages=(
    pkg-config
    timgm6mb-soundfont
    fonts-dejavu-core
    xvfb
    libgl1
    libglx-mesa0
    libegl1
    libegl-mesa0
    libgl1-mesa-dri
    libx11-6
    libx11-xcb1
    libxkbcommon0
    libxkbcommon-x11-0
)
python_packages=(pedalboard==0.9.26 numpy)

need=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
need_python=0
python3 -c "import pedalboard, numpy" >/dev/null 2>&1 || need_python=1

if [ "${#need[@]}" -eq 0 ] && [ "$need_python" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "missing: ${need[*]}$([ "$need_python" -eq 1 ] && echo " (PyPI) ${python_packages[*]}")" >&2
    echo "install them with: sudo bash .ci/deps.sh" >&2
    exit 1
fi
if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if ! python3 -c "import pedalboard, numpy" >/dev/null 2>&1; then
    # Debian's own python3 refuses system-wide pip installs unless told otherwise.
    python3 -m pip install -q "${python_packages[@]}" 2>/dev/null \
        || python3 -m pip install -q --break-system-packages "${python_packages[@]}"
fi
