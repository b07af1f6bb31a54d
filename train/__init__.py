"""DualGAN trainer: ``python -m train --help``. Imports gan_core, never ComfyUI."""
