"""The DICOM toolkit: tags, pictures (convert), Secondary Capture, and network tools (net)."""
