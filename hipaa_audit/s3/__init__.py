"""The S3 scanner: bucket settings and sampled objects of AWS S3 and S3-compatible stores."""
