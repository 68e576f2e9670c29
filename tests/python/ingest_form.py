"""Posts a pprof profile to /ingest as a multipart form, the way
pyroscope-go's uploader does (a `profile` part and a `sample_type_config`
part), with the `requests` library's own multipart encoder.

usage: ingest_form.py URL NAME PROFILE_FILE SAMPLE_TYPE_CONFIG_JSON
Prints the HTTP status; exits 0 whatever it is.
"""

import sys

import requests


def main() -> None:
    url, name, profile_path, config = sys.argv[1:5]
    with open(profile_path, "rb") as f:
        profile = f.read()
    files = {
        "profile": ("profile.pprof", profile, "application/octet-stream"),
        "sample_type_config": ("sample_type_config.json", config.encode(), "application/octet-stream"),
    }
    params = {"name": name, "format": "pprof", "spyName": "gospy", "sampleRate": "100"}
    response = requests.post(f"{url}/ingest", params=params, files=files, timeout=10)
    print(response.status_code)


if __name__ == "__main__":
    main()
