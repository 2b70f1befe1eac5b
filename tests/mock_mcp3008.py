"""The chip side of an MCP3008 on gpiozero's MockSPIDevice (as gpiozero's own SPI tests
do): the real gpiozero.MCP3008 class talks to it bit by bit over MockFactory pins."""

from __future__ import annotations

from gpiozero import Device
from gpiozero.pins.mock import MockPWMPin, MockSPIClockPin, MockSPIDevice, MockSPISelectPin

# Software SPI0 pins that gpiozero uses with MockFactory: SCLK, MOSI, MISO, CE0.
SPI0 = (11, 10, 9, 8)


class _ClockPin(MockSPIClockPin, MockPWMPin):
    """PWM-capable so it lives in a MockFactory(pin_class=MockPWMPin) beside the PWMLED."""


class _SelectPin(MockSPISelectPin, MockPWMPin):
    pass


class MockMCP3008(MockSPIDevice):
    def __init__(self) -> None:
        # MockSPIDevice.__init__ without its fixed pin classes (see _ClockPin).
        factory = Device.pin_factory
        clock, mosi, miso, select = SPI0
        self.clock_pin = factory.pin(clock, pin_class=_ClockPin)
        self.mosi_pin = factory.pin(mosi)
        self.miso_pin = factory.pin(miso)
        self.select_pin = factory.pin(select, pin_class=_SelectPin)
        self.clock_polarity = self.clock_phase = self.lsb_first = self.select_high = False
        self.bits_per_word = 8
        self.rx_bit, self.rx_buf, self.tx_buf = 0, [], []
        self.clock_pin.spi_devices = [self]
        self.select_pin.spi_device = self
        self.values = [0.0] * 8  # what each channel reads, 0..1
        self.state = "idle"

    def on_start(self) -> None:
        super().on_start()
        self.state = "idle"

    def on_bit(self) -> None:
        if self.state == "idle":
            if self.rx_buf[-1]:  # start bit
                self.state, self.rx_buf = "mode", []
        elif self.state == "mode":  # single-ended / differential
            self.state, self.rx_buf = "channel", []
        elif self.state == "channel" and len(self.rx_buf) == 3:
            # Sample-and-hold clock, a null bit, then 10 bits MSB first.
            self.tx_word(round(self.values[self.rx_word()] * 1023), 12)
            self.state = "result"

    def on_clock(self) -> None:
        # As MockSPIDevice.on_clock, with PWM-capable pins' float states read as bits.
        if bool(self.select_pin.state) != self.select_high:
            return
        if not bool(self.clock_pin.state) ^ self.clock_polarity ^ self.clock_phase:
            return
        self.rx_bit += 1
        self.rx_buf.append(int(bool(self.mosi_pin.state)))
        bit = self.tx_buf.pop(0) if self.tx_buf else 0
        if bit:
            self.miso_pin.drive_high()
        else:
            self.miso_pin.drive_low()
        self.on_bit()
