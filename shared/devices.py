"""Device presets: the screen, pixel ratio, mobile and touch flags and user agent of common
phones, tablets and laptops, so ``"device": "iphone-15-pro"`` is all a request needs.

Viewports are the devices' CSS screen sizes in portrait; ``landscape`` swaps them. Every
name is also a value of SnapAPI's ``device`` enum, so the ``snapapi`` engine can send the
name and let SnapAPI apply its own preset.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

_CHROME_DESKTOP: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
_CHROME_MAC: Final = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
_IPHONE: Final = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
_IPAD: Final = (
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def _android(model: str, *, mobile: bool = True) -> str:
    return (
        f"Mozilla/5.0 (Linux; Android 14; {model}) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/131.0.0.0 {'Mobile ' if mobile else ''}Safari/537.36"
    )


class Device(StrEnum):
    """Names of the device presets (SnapAPI's names for the same devices)."""

    desktop_1080p = "desktop-1080p"
    desktop_1440p = "desktop-1440p"
    macbook_pro_13 = "macbook-pro-13"
    macbook_pro_16 = "macbook-pro-16"
    iphone_se = "iphone-se"
    iphone_14 = "iphone-14"
    iphone_15 = "iphone-15"
    iphone_15_pro = "iphone-15-pro"
    iphone_15_pro_max = "iphone-15-pro-max"
    ipad = "ipad"
    ipad_mini = "ipad-mini"
    ipad_pro_11 = "ipad-pro-11"
    pixel_7 = "pixel-7"
    pixel_8 = "pixel-8"
    samsung_galaxy_s24 = "samsung-galaxy-s24"
    samsung_galaxy_tab_s9 = "samsung-galaxy-tab-s9"


@dataclass(frozen=True, slots=True)
class DevicePreset:
    """What a device preset sets: viewport (CSS px, portrait), pixel ratio, flags, UA."""

    width: int
    height: int
    device_scale_factor: float
    is_mobile: bool
    has_touch: bool
    user_agent: str

    def oriented(self, *, landscape: bool) -> tuple[int, int]:
        """The viewport (width, height), turned to landscape when asked."""
        if landscape and self.height > self.width:
            return self.height, self.width
        return self.width, self.height


#: Every preset, by name.
DEVICES: Final[dict[Device, DevicePreset]] = {
    Device.desktop_1080p: DevicePreset(1920, 1080, 1, False, False, _CHROME_DESKTOP),
    Device.desktop_1440p: DevicePreset(2560, 1440, 1, False, False, _CHROME_DESKTOP),
    Device.macbook_pro_13: DevicePreset(1440, 900, 2, False, False, _CHROME_MAC),
    Device.macbook_pro_16: DevicePreset(1728, 1117, 2, False, False, _CHROME_MAC),
    Device.iphone_se: DevicePreset(375, 667, 2, True, True, _IPHONE),
    Device.iphone_14: DevicePreset(390, 844, 3, True, True, _IPHONE),
    Device.iphone_15: DevicePreset(393, 852, 3, True, True, _IPHONE),
    Device.iphone_15_pro: DevicePreset(393, 852, 3, True, True, _IPHONE),
    Device.iphone_15_pro_max: DevicePreset(430, 932, 3, True, True, _IPHONE),
    Device.ipad: DevicePreset(810, 1080, 2, True, True, _IPAD),
    Device.ipad_mini: DevicePreset(768, 1024, 2, True, True, _IPAD),
    Device.ipad_pro_11: DevicePreset(834, 1194, 2, True, True, _IPAD),
    Device.pixel_7: DevicePreset(412, 915, 2.625, True, True, _android("Pixel 7")),
    Device.pixel_8: DevicePreset(412, 915, 2.625, True, True, _android("Pixel 8")),
    Device.samsung_galaxy_s24: DevicePreset(360, 780, 3, True, True, _android("SM-S921U")),
    Device.samsung_galaxy_tab_s9: DevicePreset(
        640, 1024, 2.5, True, True, _android("SM-X710", mobile=False)
    ),
}
