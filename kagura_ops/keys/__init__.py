"""Key sources that wrap and unwrap a file's data key, and identity discovery."""
