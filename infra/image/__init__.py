"""`truenas-site image build`: a DigitalOcean custom image from the TrueNAS SCALE ISO.

The ISO boots in a machine (machine.py: QEMU, or any launcher with the same contract)
with one blank virtio disk; installer.py drives the live ISO's installer over its
JSON-RPC WebSocket onto exactly that disk; build.py captures the disk without booting
it, checks the installed layout (gpt.py) and converts it (output.py) within
DigitalOcean's custom image limits.
"""
