"""Install media: ISO inspection, answer files, their validation and the answer ISO.

Modules: :mod:`wim` (WIM/ESD header and XML metadata), :mod:`iso_inspect` (the installer ISO),
:mod:`checksum` (cached sha256), :mod:`editions` (generic keys), :mod:`phases` (progress
markers), :mod:`answer` (answer files from templates), :mod:`validate` (answer-file checks),
:mod:`refdata` (the shipped unattend reference data and its generator), :mod:`virtio_win`
(drivers for WinPE), :mod:`package_media` (the spec's packages on the media) and
:mod:`answer_iso` (the answer media).
"""
