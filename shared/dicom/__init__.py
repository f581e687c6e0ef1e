"""The DICOM toolkit: tags, pictures (convert), Secondary Capture, network tools (net), and
values and acquisition parameters written for people (values, parameters)."""
