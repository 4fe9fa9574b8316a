public enum BackbonesPlaceholder {}
