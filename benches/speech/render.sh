#!/bin/sh
# Renders the speech benchmark's talkers with espeak-ng (Debian: `apt install espeak-ng
# sox`): three voices, each its own text, pitch and speed, 6 s of 16-bit mono at 16 kHz.
# The clips are bundled in data/speech/; this script says how they were made and remakes
# them (espeak-ng 1.51, sox 14.4 give the same bytes).
set -eu
out=${1:-data/speech}
mkdir -p "$out"
talk() { # name voice pitch speed text
    espeak-ng -v "$2" -p "$3" -s "$4" -w "$out/$1.raw.wav" "$5"
    sox "$out/$1.raw.wav" -r 16000 -b 16 -c 1 "$out/$1.wav" pad 0.3 trim 0 6
    rm "$out/$1.raw.wav"
}
talk talker1 en-us 40 150 "The bridge was built in the spring, and the first trains crossed it before the summer. Every morning the engineers walked along the deck and listened to the cables."
talk talker2 en-gb+f3 70 170 "Please call Stella. Ask her to bring these things with her from the store: six spoons of fresh snow peas, five thick slabs of blue cheese."
talk talker3 en-gb-scotland 25 135 "A rainbow is a division of white light into many beautiful colours. These take the shape of a long round arch, with its path high above."
