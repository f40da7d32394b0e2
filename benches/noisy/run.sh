#!/bin/sh
# Noisy over-determined mixtures: unmix's posterior means beside its plain linear outputs,
# PDGMM-VAE and FastICA (compare.py). Four families, seeds 1-5, each in DIR/FAMILY-SEED:
#   bimodal-3x6-5dB   three two-moded sources into 6 sensors at 5 dB SNR
#   cycle-4x6-5dB     uniform, Laplace, exponential, bimodal into 6 at 5 dB
#   heavy-3x5-10dB    Laplace, Student-t(5), skewed mixture into 5 at 10 dB
#   cycle-3x4-10dB    uniform, Laplace, exponential into 4 at 10 dB (one channel beyond)
# Run from the repository: sh benches/noisy/run.sh DIR [SEEDS], then
# python3 benches/noisy/compare.py DIR/*
set -eu
out=$1
seeds=${2:-1 2 3 4 5}
unmix=target/release/unmix
cargo build --release -j2 --quiet
family() { # name sources sensors snr marginals
    for seed in $seeds; do
        d=$out/$1-$seed
        $unmix synth linear --sources "$2" --sensors "$3" --snr-db "$4" --max-condition 3 \
            --marginals "$5" --seed "$seed" --output "$d" --force > /dev/null
        for run in "out" "plain --no-denoise" "vae --model vae"; do
            name=${run%% *}
            extra=${run#"$name"}
            start=$(date +%s.%N)
            # shellcheck disable=SC2086
            $unmix separate "$d/mixture.wav" -n "$2" -o "$d/$name" --force --no-plots $extra > /dev/null
            awk "BEGIN { print $(date +%s.%N) - $start }" > "$d/$name/wall_s"
        done
    done
}
family bimodal-3x6-5dB 3 6 5 bimodal
family cycle-4x6-5dB 4 6 5 uniform,laplace,exponential,bimodal
family heavy-3x5-10dB 3 5 10 laplace,student-t5,skewed-mixture
family cycle-3x4-10dB 3 4 10 uniform,laplace,exponential
