#!/usr/bin/env bash
# The supported Spark matrix (README, "Supported Spark"): for each line other than
# the development default, a virtualenv with that pyspark and delta-spark, the
# wheel of clfeval installed into it (which must keep that pyspark), then the
# end-to-end, multiclass, incremental and bad-input tests against it.
#
# Usage: tests/compat/run_matrix.sh WHEEL [LINE ...]   (LINE: 3.5, 4.0)
set -euo pipefail
cd "$(dirname "$0")/../.."
wheel="$1"
shift
lines=("$@")
[ ${#lines[@]} -gt 0 ] || lines=(3.5 4.0)
python="${PYTHON:-python3}"
tests=(tests/test_end_to_end.py tests/test_multiclass_end_to_end.py
       tests/test_incremental.py tests/test_bad_input.py)
test_deps=("pytest>=8" "hypothesis>=6.100" "scikit-learn>=1.5")

for line in "${lines[@]}"; do
  case "$line" in
    # pyspark 3.5's extras pin numpy < 2; pandas 2.2 is the last to support both.
    3.5) spark=(pyspark==3.5.9 delta-spark==3.3.3 "numpy<2" "pandas>=2.2,<2.3" "pyarrow>=15,<19") ;;
    # delta-spark 4.0 declares no upper bound on pyspark: pin it.
    4.0) spark=(pyspark==4.0.5 delta-spark==4.0.1 "pandas>=2.2,<3" "pyarrow>=15") ;;
    *) echo "unknown Spark line $line (supported: 3.5, 4.0)" >&2; exit 2 ;;
  esac
  venv=".venv-spark$line"
  echo "== Spark $line: ${spark[*]}"
  if [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "${spark[*]}" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "${spark[@]}" "${test_deps[@]}"
    echo "${spark[*]}" > "$venv/.installed"
  fi
  want="$("$venv/bin/python" -c 'import pyspark; print(pyspark.__version__)')"
  "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$wheel"
  # The wheel's own requirements, resolved against what the venv has: nothing replaced.
  "$venv/bin/python" -m pip install --quiet "$wheel"
  got="$("$venv/bin/python" -c 'import pyspark; print(pyspark.__version__)')"
  if [ "$got" != "$want" ]; then
    echo "installing the wheel replaced pyspark $want with $got" >&2
    exit 1
  fi
  echo "== Spark $line: the wheel kept pyspark $got"
  # From a folder without lib/ on the path, so the tests import the installed wheel.
  (cd tests && "../$venv/bin/python" -m pytest -q -p no:cacheprovider \
      --rootdir=.. -c ../pyproject.toml "${tests[@]#tests/}")
done
