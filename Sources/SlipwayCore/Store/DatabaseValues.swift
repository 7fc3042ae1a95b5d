import GRDB

/// Validated names are stored as their text. Rows were validated on the way in,
/// so reading does not validate again.
extension ValidatedName where Self: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue { rawValue.databaseValue }
    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> Self? {
        String.fromDatabaseValue(dbValue).map(Self.init(uncheckedRawValue:))
    }
}

extension UserName: DatabaseValueConvertible {}
extension AppName: DatabaseValueConvertible {}
extension KeyName: DatabaseValueConvertible {}
extension EnvKey: DatabaseValueConvertible {}
extension StorageName: DatabaseValueConvertible {}
extension AppRole: DatabaseValueConvertible {}
